// Apache OpenWhisk's own npm client (openwhisk 3.21.9) against a Clemmys
// node, as an OpenWhisk user's code would use it: actions (wasm and
// JavaScript), blocking and non-blocking invokes, activations and their
// logs, packages and an action inside one, namespaces, and OpenWhisk's
// error statuses.
//
// Run by crates/cli/tests/all/npm.rs with __OW_API_HOST, __OW_API_KEY and,
// for an https:// node with its own authority, NODE_EXTRA_CA_CERTS; the
// hello module's path is the first argument. Every check is an assertion:
// the script exits non-zero on the first failure, naming it, and prints
// one JSON line of what it saw for the Rust test to check again.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const openwhisk = require('openwhisk');

async function main() {
  const helloPath = process.argv[2];
  assert.ok(helloPath, 'usage: node basics.js HELLO.wasm');
  // The client reads __OW_API_HOST and __OW_API_KEY itself.
  const ow = openwhisk();
  const seen = {};

  seen.namespaces = await ow.namespaces.list();
  assert.deepEqual(seen.namespaces, ['guest']);

  // A wasm action, created as OpenWhisk's REST API takes any kind.
  const code = fs.readFileSync(helloPath).toString('base64');
  await ow.actions.create({
    name: 'npm-hello',
    action: { exec: { kind: 'wasm', code, binary: true } },
  });
  const result = await ow.actions.invoke({
    name: 'npm-hello', blocking: true, result: true, params: { name: 'npm' },
  });
  assert.deepEqual(result, { payload: 'Hello, npm!' });
  seen.wasmResult = result;

  // Creating it again without overwrite is a conflict; with it, an update.
  await assert.rejects(
    ow.actions.create({ name: 'npm-hello', action: { exec: { kind: 'wasm', code, binary: true } } }),
    (error) => error.statusCode === 409,
  );
  const updated = await ow.actions.update({
    name: 'npm-hello', action: { exec: { kind: 'wasm', code, binary: true } },
  });
  assert.equal(updated.version, '0.0.2');

  // Non-blocking: an activation id, then the record, its result and logs.
  const { activationId } = await ow.actions.invoke({ name: 'npm-hello', params: { name: 'later' } });
  assert.match(activationId, /^[0-9a-f]{32}$/);
  let record;
  for (let attempt = 0; attempt < 100 && !record; attempt++) {
    try {
      record = await ow.activations.get({ name: activationId });
      if (!record.response || record.response.status === undefined) record = undefined;
    } catch (error) {
      if (error.statusCode !== 404) throw error;
    }
    if (!record) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(record, `activation ${activationId} was never recorded`);
  assert.equal(record.response.success, true);
  assert.deepEqual(record.response.result, { payload: 'Hello, later!' });
  const logs = await ow.activations.logs({ name: activationId });
  assert.ok(logs.logs.some((line) => line.includes('greeting later')), JSON.stringify(logs));
  seen.activation = { id: activationId, result: record.response.result };
  const listed = await ow.activations.list({ name: 'npm-hello', limit: 5 });
  assert.ok(listed.some((a) => a.activationId === activationId), 'listed');

  // A JavaScript action, as OpenWhisk's nodejs kinds take it.
  await ow.actions.create({
    name: 'npm-js',
    action: 'function main(params) { return { greeting: `hi ${params.name}` }; }',
    kind: 'nodejs:default',
  });
  seen.jsResult = await ow.actions.invoke({
    name: 'npm-js', blocking: true, result: true, params: { name: 'js' },
  });
  assert.deepEqual(seen.jsResult, { greeting: 'hi js' });

  // A package with a default parameter, and an action inside it.
  await ow.packages.create({
    name: 'npm-tools',
    package: { parameters: [{ key: 'name', value: 'package default' }] },
  });
  await ow.actions.create({
    name: 'npm-tools/hello',
    action: { exec: { kind: 'wasm', code, binary: true } },
  });
  seen.packageResult = await ow.actions.invoke({
    name: 'npm-tools/hello', blocking: true, result: true,
  });
  assert.deepEqual(seen.packageResult, { payload: 'Hello, package default!' });
  const inPackage = await ow.packages.get({ name: 'npm-tools' });
  assert.deepEqual(inPackage.actions.map((a) => a.name), ['hello']);
  // A package that still holds an action cannot be deleted.
  await assert.rejects(ow.packages.delete({ name: 'npm-tools' }), (error) => error.statusCode === 409);

  const actions = await ow.actions.list();
  seen.actions = actions.map((a) => a.name).sort();
  assert.deepEqual(seen.actions, ['hello', 'npm-hello', 'npm-js']);

  // Unknown things are 404s, as in OpenWhisk.
  await assert.rejects(ow.actions.get({ name: 'no-such-action' }), (error) => error.statusCode === 404);
  await ow.actions.delete({ name: 'npm-js' });
  await assert.rejects(ow.actions.invoke({ name: 'npm-js', blocking: true }), (error) => error.statusCode === 404);

  process.stdout.write(`${JSON.stringify(seen)}\n`);
}

main().catch((error) => {
  process.stderr.write(`npm client check failed: ${error.stack || error}\n`);
  if (error.error) process.stderr.write(`server said: ${JSON.stringify(error.error)}\n`);
  process.exit(1);
});
