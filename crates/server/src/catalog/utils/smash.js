// /whisk.system/utils/smash: nests every other parameter under the name
// given as `$fieldName`.
function main(params) {
  const field = params.$fieldName;
  if (typeof field !== "string") {
    return { error: "Expected an argument '$fieldName' of type 'string'." };
  }
  const nested = Object.assign({}, params);
  delete nested.$fieldName;
  return { [field]: nested };
}
