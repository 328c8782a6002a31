// Unit tests of memwatch/assets/series.js: what the charts draw, from the API's answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  COLOR, MIN_SELECT_PX, bucketText, carryForward, dragRange, laneOf, memEventsText, retainedLines, seriesOf,
  timelinePoints, yRangePadded,
} from '../../../memwatch/assets/series.js';

const MiB = 1024 * 1024;

test('memory series are MiB columns of the same length; what is no number is a gap', () => {
  assert.deepEqual(seriesOf({ t: [0, 100, 200], v: [MiB, 2 * MiB] }), [[0, 100], [1, 2]]);
  assert.deepEqual(seriesOf({ t: [0, 1], v: [MiB / 2, 'x'] }), [[0, 1], [0.5, null]]);
  assert.deepEqual(seriesOf(null), [[], []]);
  assert.deepEqual(seriesOf({ t: 'no' }), [[], []]);
});

test('retained memory holds until its next bucket', () => {
  assert.deepEqual(carryForward([null, 1, null, 2, undefined, 0, null]), [null, 1, 1, 2, 2, 0, 0]);
});

test('the request lane stacks the classes: 2xx on top, errors at the bottom, bars mid-bucket', () => {
  const lane = laneOf({ t: [0, 100], width_ms: 100, s2xx: [10, 0], s3xx: [1, 0], s4xx: [0, 2], s5xx: [0, 1], other: [1] });
  assert.deepEqual(lane.xs, [50, 150]);
  assert.deepEqual(lane.raw, { s2xx: [10, 0], s3xx: [1, 0], s4xx: [0, 2], s5xx: [0, 1], other: [1, 0] });
  // Each class's bar reaches the sum of itself and every class under it.
  assert.deepEqual(lane.stacks, [[12, 3], [2, 3], [1, 3], [1, 1], [1, 0]]);
  assert.deepEqual(laneOf(undefined), { raw: { s2xx: [], s3xx: [], s4xx: [], s5xx: [], other: [] }, xs: [], stacks: [[], [], [], [], []] });
});

test('retained lines: the top routes in order, then the other routes and outside requests when they hold anything', () => {
  const t = [1000, 2000];
  const lines = retainedLines({
    t,
    routes: [
      { method: 'GET', route: '/leak', v: [0, 3 * MiB] },
      { method: 'GET', route: '/bad', v: [1] }, // not one value per time: left out
      { method: 'POST', route: '/<b>', v: [5, 6] },
    ],
    other: [0, 0],
    outside: [90112, 90112],
  });
  assert.deepEqual(lines.map((l) => l.key), ['route ["GET","/leak"]', 'route ["POST","/<b>"]', 'outside']);
  assert.deepEqual(lines.map((l) => l.text), ['GET /leak', 'POST /<b>', 'outside requests']);
  // Colours follow the route's place in the answer, the one left out included.
  assert.deepEqual(lines.map((l) => l.stroke), [COLOR.retained[0], COLOR.retained[2], COLOR.retainedOutside]);
  assert.ok(lines.every((l) => l.t === t));
  assert.deepEqual(retainedLines({ t: [], routes: [], other: [], outside: [] }), []);
  assert.deepEqual(retainedLines(null), []);
});

test('past ten routes, the colours repeat dashed', () => {
  const routes = Array.from({ length: 11 }, (_, i) => ({ method: 'GET', route: `/r${i}`, v: [i] }));
  const lines = retainedLines({ t: [1], routes, other: [0], outside: [0] });
  assert.equal(lines.length, 11);
  assert.equal(lines[9].dash, null);
  assert.deepEqual(lines[10].dash, [6, 3]);
  assert.equal(lines[10].stroke, lines[0].stroke);
});

test('memory axes get room above and below, never under zero', () => {
  assert.deepEqual(yRangePadded(null, 5), [0, 1]);
  // A flat line: 5% of its value, or 1 MiB when that is more.
  assert.deepEqual(yRangePadded(10, 10), [9, 11]);
  assert.deepEqual(yRangePadded(100, 100), [95, 105]);
  assert.deepEqual(yRangePadded(0, 0), [0, 1]);
  const [lo, hi] = yRangePadded(10, 20);
  assert.ok(Math.abs(lo - 9.2) < 1e-9 && Math.abs(hi - 20.8) < 1e-9, `${lo} ${hi}`);
  assert.equal(yRangePadded(1, 100)[0], 0);
});

test('points: one per pixel, two per millisecond at most, between 2 and 10000', () => {
  assert.equal(timelinePoints(1000, null), 1000);
  assert.equal(timelinePoints(1000, { from: 0, to: 100 }), 200);
  assert.equal(timelinePoints(30000, null), 10000);
  assert.equal(timelinePoints(1, { from: 5, to: 5 }), 2);
  assert.equal(timelinePoints(999.6, { from: 0, to: 1e9 }), 1000);
});

test('a drag selects the whole milliseconds it covers; a click selects nothing', () => {
  const posToVal = (px) => 1000 + px * 0.3;
  assert.equal(dragRange(10, MIN_SELECT_PX - 1, posToVal), null);
  assert.deepEqual(dragRange(10, 100, posToVal), { from: 1003, to: 1033 });
  assert.deepEqual(dragRange(11, 100, posToVal), { from: 1003, to: 1034 });
});

test('hover text: a bucket by class, and the largest memory events first', () => {
  const raw = { s2xx: [0, 11], s3xx: [0, 0], s4xx: [0, 0], s5xx: [0, 1], other: [0, 0] };
  assert.equal(bucketText(raw, 1, 100), '12 requests in 100 ms (2xx 11, 5xx 1)');
  assert.equal(bucketText(raw, 0, 0.5), 'no requests in 0.5 ms');
  const t = new Date(2026, 11, 6, 14, 3, 7, 250).getTime();
  const ev = (op, bytes) => ({ t, op, bytes, pid: 42 });
  assert.equal(memEventsText([ev('brk', 2 * MiB), ev('munmap', -8 * MiB)]),
    'munmap −8 MiB (pid 42, 14:03:07.250), brk +2 MiB (pid 42, 14:03:07.250)');
  const five = [1, 2, 3, 4, 5].map((n) => ev('mmap', n * MiB));
  assert.match(memEventsText(five), /^mmap \+5 MiB .*mmap \+3 MiB \(pid 42, [^)]*\), 2 more$/);
});
