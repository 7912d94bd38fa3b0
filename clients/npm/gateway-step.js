// One step of Apache OpenWhisk's npm client against the Clemmys gateway,
// for tests that change what the gateway may do between steps (an owner
// authorizing or revoking it, a restart): `deploy NAME PATH.wasm`,
// `invoke NAME PARAMS_JSON` (blocking, result only), `invoke-later NAME
// PARAMS_JSON` (non-blocking) or `result ACTIVATION_ID`. Prints one JSON line:
// {"ok": true, "out": ...} or {"ok": false, "statusCode": ..., "error": ...}.
'use strict';

const fs = require('node:fs');
const openwhisk = require('openwhisk');

async function main() {
  const [step, name, argument] = process.argv.slice(2);
  const ow = openwhisk();
  let out;
  if (step === 'deploy') {
    const code = fs.readFileSync(argument).toString('base64');
    out = await ow.actions.update({ name, action: { exec: { kind: 'wasm', code, binary: true } } });
  } else if (step === 'invoke') {
    out = await ow.actions.invoke({ name, blocking: true, result: true, params: JSON.parse(argument) });
  } else if (step === 'invoke-later') {
    out = await ow.actions.invoke({ name, params: JSON.parse(argument) });
  } else if (step === 'result') {
    // `name` is an activation id here.
    out = await ow.activations.result({ name });
  } else {
    throw new Error(`unknown step ${step}`);
  }
  return out;
}

main().then(
  (out) => process.stdout.write(`${JSON.stringify({ ok: true, out })}\n`),
  (error) => process.stdout.write(`${JSON.stringify({
    ok: false, statusCode: error.statusCode, error: error.error || String(error),
  })}\n`),
);
