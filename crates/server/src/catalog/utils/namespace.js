// /whisk.system/utils/namespace: the namespace this activation runs for
// (the caller's).
function main() {
  return { namespace: process.env.__OW_NAMESPACE };
}
