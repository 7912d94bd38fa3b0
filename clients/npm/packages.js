// Packages and bindings with Apache OpenWhisk's npm client: a package
// with a default parameter and an action, a binding to it with its own
// parameter, the action invoked through the binding (binding over package,
// invoke over both), get, list and delete. Run by
// crates/cli/tests/all/npm.rs; the hello module's path is the first
// argument.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const openwhisk = require('openwhisk');
const { run } = require('./common');

run(async () => {
  const ow = openwhisk();
  const seen = {};
  const [namespace] = await ow.namespaces.list();
  const code = fs.readFileSync(process.argv[2]).toString('base64');

  await ow.packages.create({
    name: 'npm-pkg',
    package: { parameters: [{ key: 'name', value: 'package' }] },
  });
  await ow.actions.create({
    name: 'npm-pkg/hello',
    action: { exec: { kind: 'wasm', code, binary: true } },
  });
  await ow.packages.create({
    name: 'npm-bound',
    package: {
      binding: { namespace, name: 'npm-pkg' },
      parameters: [{ key: 'name', value: 'binding' }],
    },
  });

  // Through the binding: its parameter wins over the package's, the
  // invoke's over both.
  seen.viaBinding = await ow.actions.invoke({ name: 'npm-bound/hello', blocking: true, result: true });
  assert.deepEqual(seen.viaBinding, { payload: 'Hello, binding!' });
  seen.invokeWins = await ow.actions.invoke({
    name: 'npm-bound/hello', blocking: true, result: true, params: { name: 'invoke' },
  });
  assert.deepEqual(seen.invokeWins, { payload: 'Hello, invoke!' });
  seen.viaPackage = await ow.actions.invoke({ name: 'npm-pkg/hello', blocking: true, result: true });
  assert.deepEqual(seen.viaPackage, { payload: 'Hello, package!' });

  const binding = await ow.packages.get({ name: 'npm-bound' });
  assert.deepEqual(binding.binding, { namespace, name: 'npm-pkg' });
  assert.deepEqual(binding.parameters, [{ key: 'name', value: 'binding' }]);
  const listed = (await ow.packages.list()).map((p) => p.name);
  assert.ok(listed.includes('npm-pkg') && listed.includes('npm-bound'), JSON.stringify(listed));
  seen.packages = listed.sort();

  // A binding to a package that does not exist is refused.
  await assert.rejects(
    ow.packages.create({ name: 'npm-dangling', package: { binding: { namespace, name: 'no-such-package' } } }),
    (error) => error.statusCode >= 400 && error.statusCode < 500,
  );

  // Deleting: the binding, then the action, then the package.
  await ow.packages.delete({ name: 'npm-bound' });
  await assert.rejects(ow.packages.get({ name: 'npm-bound' }), (error) => error.statusCode === 404);
  await ow.actions.delete({ name: 'npm-pkg/hello' });
  await ow.packages.delete({ name: 'npm-pkg' });
  await assert.rejects(ow.packages.get({ name: 'npm-pkg' }), (error) => error.statusCode === 404);
  return seen;
});
