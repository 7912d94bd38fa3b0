// The alarms feed as Apache OpenWhisk's npm client sets one up: a trigger,
// a rule to an action, then `feeds.create` on /whisk.system/alarms/interval
// (an invoke of the feed action with lifecycleEvent CREATE, the trigger's
// name and the caller's key). The alarm starts in two seconds and repeats
// every minute (the interval feed's unit), so the rule fires at least twice
// within a bounded wait; `feeds.delete` stops it. Run by
// crates/cli/tests/all/npm.rs.
'use strict';

const assert = require('node:assert/strict');
const openwhisk = require('openwhisk');
const { run, waitFor } = require('./common');

const FEED = '/whisk.system/alarms/interval';

run(async () => {
  const ow = openwhisk();
  const seen = {};

  await ow.actions.create({
    name: 'npm-tick',
    action: 'function main(p) { return { tick: p.tick, minutes: p.minutes === undefined ? null : p.minutes }; }',
    kind: 'nodejs:default',
  });
  await ow.triggers.create({ name: 'npm-alarm' });
  await ow.rules.create({ name: 'npm-alarm-rule', trigger: 'npm-alarm', action: 'npm-tick' });

  const startDate = Date.now() + 2000;
  const created = await ow.feeds.create({
    name: FEED,
    trigger: 'npm-alarm',
    params: { minutes: 1, startDate, stopDate: startDate + 150000, trigger_payload: { tick: 'yes' } },
  });
  assert.equal(created.response.success, true, JSON.stringify(created));
  const read = await ow.feeds.get({ name: FEED, trigger: 'npm-alarm' });
  assert.equal(read.response.result.config.minutes, 1, JSON.stringify(read));
  assert.equal(read.response.result.status.active, true, JSON.stringify(read));
  const trigger = await ow.triggers.get({ name: 'npm-alarm' });
  assert.equal(trigger.annotations.find((a) => a.key === 'feed').value, FEED);

  // At startDate, then a minute later.
  const ticks = await waitFor('two alarm fires', async () => {
    const records = await ow.activations.list({ name: 'npm-tick', limit: 10, docs: true });
    // A record still running has no response yet.
    const finished = records.filter((record) => record.response && record.response.status !== undefined);
    return finished.length >= 2 ? finished : undefined;
  }, { timeoutMs: 100000, everyMs: 1000 });
  for (const record of ticks) {
    assert.deepEqual(record.response.result, { tick: 'yes', minutes: null }, JSON.stringify(record));
  }
  const starts = ticks.map((record) => record.start).sort();
  assert.ok(starts[1] - starts[0] >= 55000, `fires ${starts[1] - starts[0]} ms apart`);
  seen.fires = ticks.length;

  // Deleted, the feed stops and leaves the trigger plain.
  const deleted = await ow.feeds.delete({ name: FEED, trigger: 'npm-alarm' });
  assert.equal(deleted.response.success, true, JSON.stringify(deleted));
  const plain = await ow.triggers.get({ name: 'npm-alarm' });
  assert.ok(!plain.annotations.some((a) => a.key === 'feed'), JSON.stringify(plain));
  // The feed's refusal is its error, as OpenWhisk answers a feed action's: 502.
  await assert.rejects(
    ow.feeds.get({ name: FEED, trigger: 'npm-alarm' }),
    (error) => error.statusCode === 502 && /does not exist/.test(error.message),
  );
  await ow.rules.delete({ name: 'npm-alarm-rule' });
  await ow.triggers.delete({ name: 'npm-alarm' });
  return seen;
});
