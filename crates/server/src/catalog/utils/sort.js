// /whisk.system/utils/sort: sorts `lines` (as JavaScript's default sort
// does, by their text) and counts them.
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines.slice() : [];
  lines.sort();
  return { lines: lines, length: lines.length };
}
