// /whisk.system/utils/cat: joins `lines` (strings or numbers) with
// newlines into `payload`, keeping `lines`; every other field is dropped.
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines : [];
  return { lines: lines, payload: lines.join("\n") };
}
