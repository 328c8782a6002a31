// Unit tests of the pure parts of memwatch/assets/state.js, api.js, requests.js and
// log_lines.js: the run's time span, API addresses, and the lists' captions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiUrl, tokenOf } from '../../../memwatch/assets/api.js';
import { lineText } from '../../../memwatch/assets/log_lines.js';
import { requestsMeta } from '../../../memwatch/assets/requests.js';
import { boundsOf } from '../../../memwatch/assets/state.js';

test('the run spans its start to its end, to the latest data while live, to now before any', () => {
  const s = (fields) => ({ started_ms: 1000, ended_ms: null, latest_ms: null, ...fields });
  assert.deepEqual(boundsOf(s({ ended_ms: 5000, latest_ms: 4000 }), 9000), { from: 1000, to: 5000 });
  assert.deepEqual(boundsOf(s({ latest_ms: 4000 }), 9000), { from: 1000, to: 4000 });
  assert.deepEqual(boundsOf(s({}), 9000), { from: 1000, to: 9000 });
  // Never empty: a recording of one instant spans a millisecond.
  assert.deepEqual(boundsOf(s({ ended_ms: 1000 }), 9000), { from: 1000, to: 1001 });
  assert.equal(boundsOf(s({ started_ms: null }), 9000), null);
  assert.equal(boundsOf(null, 9000), null);
});

test('API addresses carry the given parameters and the token, and nothing empty', () => {
  assert.equal(apiUrl('/api/summary', undefined, ''), '/api/summary');
  assert.equal(apiUrl('/api/endpoints', { from: 1, to: 2 }, ''), '/api/endpoints?from=1&to=2');
  assert.equal(apiUrl('/api/stacks', { route: '', method: null, from: undefined, limit: 0 }, 't k'), '/api/stacks?limit=0&token=t+k');
  assert.equal(apiUrl('/api/requests', { route: '/a b?c=d&e' }, ''), '/api/requests?route=%2Fa+b%3Fc%3Dd%26e');
  assert.equal(tokenOf('#token=s3cret&x=1'), 's3cret');
  assert.equal(tokenOf('#x=1'), '');
  assert.equal(tokenOf(''), '');
});

test('the request list says how many it shows, of how many, and where', () => {
  assert.equal(requestsMeta({ total: 1, truncated: false, requests: [] }, 1, false), '1 request in the whole run · highlighted on the chart');
  assert.equal(requestsMeta({ total: 1204, truncated: true, requests: [] }, 500, true), 'newest 500 of 1,204 in the selected range · highlighted on the chart');
  assert.equal(requestsMeta({ truncated: false, requests: [] }, 3, false), '3 requests in the whole run · highlighted on the chart');
});

test('an access-log line shows what was parsed of it, else its raw text', () => {
  const line = (fields) => ({ arrived_ms: 0, ts_ms: null, ok: false, reason: null, raw: null, method: null, target: null, status: null, ...fields });
  assert.equal(lineText(line({ ok: true, method: 'GET', target: '/a', status: 404, raw: 'x' })), 'GET /a 404');
  assert.equal(lineText(line({ ok: true, method: 'GET', target: '', status: null })), 'GET');
  assert.equal(lineText(line({ reason: 'bad date', raw: '<script>' })), '<script>');
  assert.equal(lineText(line({ reason: 'bad date' })), '');
});
