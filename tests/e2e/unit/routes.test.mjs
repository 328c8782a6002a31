// Unit tests of memwatch/assets/routes.js: the routes table's order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorShare, signalLabel, sortEndpoints } from '../../../memwatch/assets/routes.js';

const KiB = 1024;
const route = (path, fields) => ({
  method: 'GET', route: path, requests: 10, statuses: { 200: 10 }, retention: 'none',
  kept_per_request_bytes: 0, retained_bytes: 0, rss_bytes: 0, ...fields,
});
const order = (list) => list.map((e) => `${e.method} ${e.route}`);

test('by what is kept: per further request, then in total; too few requests to judge come last either way', () => {
  const list = [
    route('/churn', { kept_per_request_bytes: 0, retained_bytes: 64 * KiB }),
    route('/once', { requests: 3, kept_per_request_bytes: 900 * KiB, retention: 'too-few' }),
    route('/leak', { kept_per_request_bytes: 256 * KiB, retained_bytes: 2560 * KiB, retention: 'keeps' }),
    route('/', {}),
  ];
  assert.deepEqual(order(sortEndpoints(list, { key: 'kept_per_request_bytes', dir: -1 })), ['GET /leak', 'GET /churn', 'GET /', 'GET /once']);
  assert.deepEqual(order(sortEndpoints(list, { key: 'kept_per_request_bytes', dir: 1 })), ['GET /', 'GET /churn', 'GET /leak', 'GET /once']);
});

test('a recording without retained figures ranks by resident bytes faulted in', () => {
  const list = [
    route('/a', { retention: 'unknown', kept_per_request_bytes: null, rss_bytes: KiB }),
    route('/b', { retention: 'unknown', kept_per_request_bytes: null, rss_bytes: 8 * KiB }),
  ];
  assert.deepEqual(order(sortEndpoints(list, { key: 'kept_per_request_bytes', dir: -1 })), ['GET /b', 'GET /a']);
});

test('by errors: a 5xx weighs a thousand 4xx', () => {
  assert.equal(errorShare({ statuses: { 200: 3, 404: 1 } }), 0.25);
  assert.equal(errorShare({ statuses: { 200: 1, 503: 1 } }), 500);
  assert.equal(errorShare({ statuses: {} }), 0);
  const list = [
    route('/notfound', { statuses: { 404: 10 } }),
    route('/fine', {}),
    route('/broken', { statuses: { 200: 99, 500: 1 } }),
  ];
  assert.deepEqual(order(sortEndpoints(list, { key: 'errors', dir: -1 })), ['GET /broken', 'GET /notfound', 'GET /fine']);
});

test('text columns ignore case; ties go by route, then method; missing numbers sort lowest', () => {
  const list = [
    route('/b', { method: 'POST' }),
    route('/B', { method: 'GET' }),
    route('/a', { method: 'GET', duration_ms_p95: 3 }),
    route('/c', { method: 'get', duration_ms_p95: null }),
  ];
  assert.deepEqual(order(sortEndpoints(list, { key: 'method', dir: 1 })), ['GET /a', 'GET /B', 'get /c', 'POST /b']);
  assert.deepEqual(order(sortEndpoints(list, { key: 'route', dir: 1 })), ['GET /a', 'POST /b', 'GET /B', 'get /c']);
  assert.deepEqual(order(sortEndpoints(list, { key: 'duration_ms_p95', dir: -1 })), ['GET /a', 'POST /b', 'GET /B', 'get /c']);
  // The list given is left as it was.
  assert.equal(list[0].route, '/b');
});

test('by the regression: routes without an estimate last', () => {
  const list = [
    route('/none', { regression: null }),
    route('/some', { regression: { kept_per_request_bytes: 10 } }),
    route('/more', { regression: { kept_per_request_bytes: 20 } }),
  ];
  assert.deepEqual(order(sortEndpoints(list, { key: 'regression', dir: -1 })), ['GET /more', 'GET /some', 'GET /none']);
});

test('each regression signal is named in words; an unknown one is shown as it came', () => {
  assert.equal(signalLabel('swept_heap'), 'followed heap as each collection left it');
  assert.equal(signalLabel('live_heap'), 'live heap the runtime reported after each collection');
  assert.equal(signalLabel('kept_heap'), 'followed heap each collection kept');
  assert.equal(signalLabel('kept_spans'), 'followed spans each collection kept');
  assert.equal(signalLabel('heap'), 'followed heap');
  assert.equal(signalLabel('rss'), 'resident set');
  assert.equal(signalLabel('<b>x</b>'), '<b>x</b>');
});
