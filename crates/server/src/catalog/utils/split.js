// /whisk.system/utils/split: splits `payload` into `lines` at
// `separator` (a string; line breaks when absent), keeping `payload`.
function main(params) {
  const payload = params.payload === undefined || params.payload === null ? "" : String(params.payload);
  const separator = typeof params.separator === "string" && params.separator !== ""
    ? params.separator
    : /\r?\n/;
  return { lines: payload.split(separator), payload: params.payload };
}
