// Triggers and rules with Apache OpenWhisk's npm client: a trigger with a
// default parameter and a rule to a JavaScript action; a fire answers the
// trigger's activation, whose logs name the rule's activation, whose result
// shows the event's parameters over the trigger's. A disabled rule fires
// nothing; enabled again, it does. Run by crates/cli/tests/all/npm.rs.
'use strict';

const assert = require('node:assert/strict');
const openwhisk = require('openwhisk');
const { finishedActivation, run, sleep } = require('./common');

// The activations of action `name` the node has recorded.
async function activationsOf(ow, name) {
  return (await ow.activations.list({ name, limit: 50 })).map((a) => a.activationId);
}

// Fires `trigger` with `params` and follows it to the rule's activation.
async function fireAndFollow(ow, trigger, params) {
  const fired = await ow.triggers.invoke({ name: trigger, params });
  assert.match(fired.activationId, /^[0-9a-f]{32}$/, JSON.stringify(fired));
  const record = await finishedActivation(ow, fired.activationId);
  assert.equal(record.name, trigger);
  assert.equal(record.logs.length, 1, JSON.stringify(record.logs));
  const line = JSON.parse(record.logs[0]);
  assert.equal(line.success, true, record.logs[0]);
  assert.match(line.rule, /\/npm-rule$/);
  const ruleActivation = await finishedActivation(ow, line.activationId);
  return { trigger: record, rule: ruleActivation };
}

run(async () => {
  const ow = openwhisk();
  const seen = {};

  await ow.actions.create({
    name: 'npm-colour',
    action: 'function main(p) { return { colour: p.colour, source: p.source }; }',
    kind: 'nodejs:default',
  });
  await ow.triggers.create({
    name: 'npm-trigger',
    trigger: { parameters: [{ key: 'source', value: 'trigger' }, { key: 'colour', value: 'red' }] },
  });
  await ow.rules.create({ name: 'npm-rule', trigger: 'npm-trigger', action: 'npm-colour' });
  assert.equal((await ow.rules.get({ name: 'npm-rule' })).status, 'active');

  const first = await fireAndFollow(ow, 'npm-trigger', { colour: 'blue' });
  assert.equal(first.rule.name, 'npm-colour');
  assert.equal(first.rule.response.success, true);
  assert.deepEqual(first.rule.response.result, { colour: 'blue', source: 'trigger' });
  seen.ruleResult = first.rule.response.result;
  seen.ruleActivation = first.rule.activationId;

  // Disabled, the rule fires nothing: no trigger activation, and the
  // action gains no activation.
  await ow.rules.disable({ name: 'npm-rule' });
  assert.equal((await ow.rules.get({ name: 'npm-rule' })).status, 'inactive');
  const before = await activationsOf(ow, 'npm-colour');
  assert.deepEqual(before, [first.rule.activationId]);
  const quiet = await ow.triggers.invoke({ name: 'npm-trigger', params: { colour: 'green' } });
  assert.ok(!quiet || !quiet.activationId, `a disabled rule fired: ${JSON.stringify(quiet)}`);
  await sleep(1000);
  assert.deepEqual(await activationsOf(ow, 'npm-colour'), before);

  // Enabled again, it fires.
  await ow.rules.enable({ name: 'npm-rule' });
  const again = await fireAndFollow(ow, 'npm-trigger', { colour: 'green' });
  assert.deepEqual(again.rule.response.result, { colour: 'green', source: 'trigger' });
  seen.afterEnable = again.rule.response.result;

  await ow.rules.delete({ name: 'npm-rule' });
  await ow.triggers.delete({ name: 'npm-trigger' });
  await assert.rejects(ow.triggers.get({ name: 'npm-trigger' }), (error) => error.statusCode === 404);
  return seen;
});
