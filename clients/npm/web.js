// Web actions as a browser or any HTTP client reaches them: created with
// Apache OpenWhisk's npm client (annotation web-export), then fetched with
// node's own http(s), without credentials: a .json URL and a .http one.
// Run by crates/cli/tests/all/npm.rs.
'use strict';

const assert = require('node:assert/strict');
const openwhisk = require('openwhisk');
const { run } = require('./common');

// GET `url` with no credentials: status, headers and body text.
function get(url) {
  const transport = url.startsWith('https:') ? require('node:https') : require('node:http');
  return new Promise((resolve, reject) => {
    transport.get(url, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body }));
    }).on('error', reject);
  });
}

run(async () => {
  const ow = openwhisk();
  const seen = {};
  const [namespace] = await ow.namespaces.list();
  const base = `${process.env.__OW_API_HOST}/api/v1/web/${namespace}/default`;

  await ow.actions.create({
    name: 'npm-web-json',
    action: 'function main(p) { return { greeting: `hello ${p.name}`, method: p.__ow_method }; }',
    kind: 'nodejs:default',
    annotations: { 'web-export': true },
  });
  await ow.actions.create({
    name: 'npm-web-http',
    action: `function main(p) {
      return { statusCode: 201, headers: { 'content-type': 'text/plain', 'x-made-by': 'clemmys' },
               body: 'made for ' + p.name + ' at ' + p.__ow_path };
    }`,
    kind: 'nodejs:default',
    annotations: { 'web-export': true },
  });
  await ow.actions.create({
    name: 'npm-not-web',
    action: 'function main() { return { secret: true }; }',
    kind: 'nodejs:default',
  });

  const json = await get(`${base}/npm-web-json.json?name=web`);
  assert.equal(json.status, 200, json.body);
  assert.match(json.headers['content-type'], /^application\/json/);
  seen.json = JSON.parse(json.body);
  assert.deepEqual(seen.json, { greeting: 'hello web', method: 'get' });

  const http = await get(`${base}/npm-web-http.http/some/path?name=http`);
  assert.equal(http.status, 201, http.body);
  assert.equal(http.headers['x-made-by'], 'clemmys');
  assert.match(http.headers['content-type'], /^text\/plain/);
  assert.equal(http.body, 'made for http at /some/path');
  seen.http = { status: http.status, body: http.body };

  // Without web-export, the URL shows nothing of the action.
  const hidden = await get(`${base}/npm-not-web.json`);
  assert.equal(hidden.status, 404, hidden.body);
  assert.ok(!hidden.body.includes('secret'), hidden.body);
  return seen;
});
