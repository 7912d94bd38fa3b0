// What the npm client scripts share: waiting for activation records that
// a node writes after answering, with a bound on the wait.
'use strict';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Calls `probe` every `everyMs` until it answers something other than
// undefined; fails naming `what` after `timeoutMs`.
async function waitFor(what, probe, { timeoutMs = 10000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// The finished record of activation `id` (404 until it is written).
function finishedActivation(ow, id, options) {
  return waitFor(`activation ${id}`, async () => {
    try {
      const record = await ow.activations.get({ name: id });
      return record.response && record.response.status !== undefined ? record : undefined;
    } catch (error) {
      if (error.statusCode === 404) return undefined;
      throw error;
    }
  }, options);
}

// Runs `main`, printing one JSON line of what it saw, or exits non-zero
// naming the first failure.
function run(main) {
  main().then(
    (seen) => process.stdout.write(`${JSON.stringify(seen)}\n`),
    (error) => {
      process.stderr.write(`npm client check failed: ${error.stack || error}\n`);
      if (error.error) process.stderr.write(`server said: ${JSON.stringify(error.error)}\n`);
      process.exit(1);
    },
  );
}

module.exports = { sleep, waitFor, finishedActivation, run };
