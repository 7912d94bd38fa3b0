// Apache OpenWhisk's own npm client (openwhisk 3.21.9) against the Clemmys
// attested gateway, trusting only the gateway's pinned RA-TLS certificate
// (NODE_EXTRA_CA_CERTS, written by `clemmys gateway verify --out`): a
// confidential wasm action created, invoked blocking and non-blocking, its
// activations, results and logs read, an action with bound parameters
// (sealed with its code) created and invoked, an action in a confidential
// package (its parameters kept by the gateway and sealed in) invoked, as
// an unmodified OpenWhisk user's code does. The gateway seals and opens; this script never knows.
//
// Run by crates/cli/tests/all/gateway.rs with __OW_API_HOST (the gateway),
// __OW_API_KEY; arguments: the secret example's path and the secret.
// Every check is an assertion; one JSON line of what it saw is printed
// for the Rust test to check again.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const openwhisk = require('openwhisk');

async function waitForRecord(ow, activationId) {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      const record = await ow.activations.get({ name: activationId });
      if (record.response && record.response.status !== undefined) return record;
    } catch (error) {
      if (error.statusCode !== 404) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`activation ${activationId} was never recorded`);
}

async function main() {
  const [secretPath, secret] = process.argv.slice(2);
  assert.ok(secretPath && secret, 'usage: node gateway.js SECRET.wasm SECRET');
  const shout = secret.toUpperCase();
  const reversed = [...secret].reverse().join('');
  const ow = openwhisk();
  const seen = {};

  const code = fs.readFileSync(secretPath).toString('base64');
  const created = await ow.actions.create({
    name: 'secret',
    action: { exec: { kind: 'wasm', code, binary: true } },
  });
  assert.equal(created.name, 'secret');
  assert.equal(created.exec.code, undefined, 'the gateway returned code');
  // Creating it again without overwrite is a conflict, as in OpenWhisk.
  await assert.rejects(
    ow.actions.create({ name: 'secret', action: { exec: { kind: 'wasm', code, binary: true } } }),
    (error) => error.statusCode === 409,
  );

  // Blocking, result only.
  seen.result = await ow.actions.invoke({
    name: 'secret', blocking: true, result: true, params: { secret },
  });
  assert.deepEqual(seen.result, { shout });

  // Blocking, the whole record, with its opened logs.
  const record = await ow.actions.invoke({ name: 'secret', blocking: true, params: { secret } });
  assert.equal(record.response.success, true);
  assert.deepEqual(record.response.result, { shout });
  assert.ok(record.logs.some((line) => line.includes(`log: ${reversed}`)), JSON.stringify(record.logs));
  seen.blockingRecord = { id: record.activationId, result: record.response.result };

  // Non-blocking: an id, then the record, the result and the logs.
  const { activationId } = await ow.actions.invoke({ name: 'secret', params: { secret } });
  assert.match(activationId, /^[0-9a-f]{32}$/);
  const later = await waitForRecord(ow, activationId);
  assert.deepEqual(later.response.result, { shout });
  const result = await ow.activations.result({ name: activationId });
  assert.deepEqual(result.result, { shout });
  const logs = await ow.activations.logs({ name: activationId });
  assert.ok(logs.logs.some((line) => line.includes(`log: ${reversed}`)), JSON.stringify(logs));
  seen.nonBlocking = { id: activationId, result: result.result, logs: logs.logs };

  const listed = await ow.activations.list({ name: 'secret', limit: 10 });
  assert.ok(listed.some((a) => a.activationId === activationId), 'listed');
  const actions = await ow.actions.list();
  assert.ok(actions.some((a) => a.name === 'secret'), 'actions listed');
  const got = await ow.actions.get({ name: 'secret' });
  assert.equal(got.exec.code, undefined, 'the gateway returned sealed code');
  assert.ok(got.annotations.some((a) => a.key === 'confidential' && a.value === true), JSON.stringify(got.annotations));

  // What the gateway cannot do without plaintext reaching the provider
  // is refused, not passed through.
  await assert.rejects(
    ow.actions.create({
      name: 'gw-js', action: 'function main() { return {}; }', kind: 'nodejs:default',
    }),
    (error) => error.statusCode === 501,
  );
  await assert.rejects(ow.triggers.list(), (error) => error.statusCode === 501);
  await assert.rejects(
    ow.actions.invoke({ name: 'no-such-action', blocking: true, params: { secret } }),
    (error) => error.statusCode === 404,
  );

  // Bound parameters (the client's `params`) are sealed with the code:
  // invokes get them as defaults, their own winning; an update with the
  // code and no parameters keeps them (the gateway seals its own copy
  // again) and a GET through the gateway shows them; without the code
  // they cannot be sealed, so they are refused, not sent.
  const bound = await ow.actions.create({
    name: 'gw-bound', action: fs.readFileSync(secretPath), kind: 'wasm', params: { secret },
  });
  assert.deepEqual(bound.parameters, [{ key: 'secret', value: secret }]);
  assert.deepEqual(await ow.actions.invoke({ name: 'gw-bound', blocking: true, result: true }), { shout });
  assert.deepEqual(
    await ow.actions.invoke({ name: 'gw-bound', blocking: true, result: true, params: { secret: 'mine' } }),
    { shout: 'MINE' },
  );
  await ow.actions.update({ name: 'gw-bound', action: fs.readFileSync(secretPath), kind: 'wasm' });
  assert.deepEqual(await ow.actions.invoke({ name: 'gw-bound', blocking: true, result: true }), { shout });
  const shown = await ow.actions.get({ name: 'gw-bound' });
  assert.deepEqual(shown.parameters, [{ key: 'secret', value: secret }]);
  await assert.rejects(
    ow.actions.update({ name: 'gw-bound', params: { secret: 'other' } }),
    (error) => error.statusCode === 400,
  );
  seen.boundDefault = bound.parameters;

  // A package created through the gateway is confidential: it keeps the
  // package's parameters (the node stores none) and seals them into the
  // actions deployed in it, under their own.
  const vault = await ow.packages.create({
    name: 'gw-vault', package: { parameters: [{ key: 'secret', value: secret }] },
  });
  assert.deepEqual(vault.parameters, [{ key: 'secret', value: secret }]);
  assert.ok(vault.annotations.some((a) => a.key === 'confidential' && a.value === true), JSON.stringify(vault));
  await ow.actions.create({ name: 'gw-vault/secret', action: fs.readFileSync(secretPath), kind: 'wasm' });
  seen.packaged = await ow.actions.invoke({ name: 'gw-vault/secret', blocking: true, result: true });
  assert.deepEqual(seen.packaged, { shout });
  const gotVault = await ow.packages.get({ name: 'gw-vault' });
  assert.deepEqual(gotVault.parameters, [{ key: 'secret', value: secret }]);
  await assert.rejects(
    ow.packages.create({ name: 'gw-bound', package: { binding: { namespace: '_', name: 'gw-vault' } } }),
    (error) => error.statusCode === 400,
  );

  // Deleted through the gateway, an action is gone.
  await ow.actions.create({ name: 'doomed', action: { exec: { kind: 'wasm', code, binary: true } } });
  await ow.actions.delete({ name: 'doomed' });
  await assert.rejects(
    ow.actions.invoke({ name: 'doomed', blocking: true, params: { secret } }),
    (error) => error.statusCode === 404,
  );
  process.stdout.write(`${JSON.stringify(seen)}\n`);
}

main().catch((error) => {
  process.stderr.write(`npm client check failed: ${error.stack || error}\n`);
  if (error.error) process.stderr.write(`gateway said: ${JSON.stringify(error.error)}\n`);
  process.exit(1);
});
