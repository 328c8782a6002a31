// Unit tests of memwatch/assets/format.js: numbers as the page shows them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  GiB, KiB, MiB, countOf, fmtBytes, fmtBytesPair, fmtDuration, fmtInt, fmtMs, fmtRange, fmtTime, hasCounts,
  memTickLabels, statusClass, timeTickLabels, trimZeros,
} from '../../../memwatch/assets/format.js';

/** Epoch ms of a local wall-clock time, so that the tests hold in any time zone. */
const local = (y, mo, d, h, mi, s, ms) => new Date(y, mo - 1, d, h, mi, s, ms).getTime();

test('bytes: three significant digits at most, binary units, a true minus sign', () => {
  assert.equal(fmtBytes(0), '0 B');
  assert.equal(fmtBytes(1023), '1023 B');
  assert.equal(fmtBytes(KiB), '1 KiB');
  assert.equal(fmtBytes(1536), '1.5 KiB');
  assert.equal(fmtBytes(12.345 * KiB), '12.3 KiB');
  assert.equal(fmtBytes(123.456 * KiB), '123 KiB');
  assert.equal(fmtBytes(10.5 * MiB), '10.5 MiB');
  assert.equal(fmtBytes(-2 * GiB), '−2 GiB');
  assert.equal(fmtBytes(3 * 1024 * GiB), '3 TiB');
  for (const v of [null, undefined, NaN, Infinity, '5']) assert.equal(fmtBytes(v), '–');
});

test('a pair of byte counts names a shared unit once', () => {
  assert.equal(fmtBytesPair(37.8 * MiB, 88.8 * MiB), '37.8 → 88.8 MiB');
  assert.equal(fmtBytesPair(512, 2 * KiB), '512 B → 2 KiB');
  assert.equal(fmtBytesPair(null, MiB), '– → 1 MiB');
});

test('memory ticks get as many decimals as keep different values apart', () => {
  assert.deepEqual(memTickLabels([20, 40, 60]), ['20 MiB', '40 MiB', '60 MiB']);
  // 21.25 and 21.3 both read 21.3 with one decimal: a second one tells them apart.
  assert.deepEqual(memTickLabels([21.2, 21.25, 21.3]), ['21.2 MiB', '21.25 MiB', '21.3 MiB']);
  assert.deepEqual(memTickLabels([0.5, 2048, null]), ['512 KiB', '2 GiB', '']);
  // Equal values may share a label; six more decimals at most.
  assert.deepEqual(memTickLabels([1, 1]), ['1 MiB', '1 MiB']);
  assert.equal(memTickLabels([1, 1 + 1e-12])[1], '1 MiB');
});

test('counts, durations in milliseconds and in seconds', () => {
  assert.equal(fmtInt(1234567.4), '1,234,567');
  assert.equal(fmtInt(undefined), '–');
  assert.equal(fmtMs(0.423), '0.42 ms');
  assert.equal(fmtMs(1), '1 ms');
  assert.equal(fmtMs(12.34), '12.3 ms');
  assert.equal(fmtMs(340.6), '341 ms');
  assert.equal(fmtMs(12345), '12.3 s');
  assert.equal(fmtDuration(9.5), '9.5 s');
  assert.equal(fmtDuration(42.14), '42.1 s');
  assert.equal(fmtDuration(185), '3 min 5 s');
  assert.equal(fmtDuration(7260), '2 h 1 min');
  assert.equal(fmtDuration(null), '–');
  assert.equal(trimZeros('2.50'), '2.5');
  assert.equal(trimZeros('2.00'), '2');
  assert.equal(trimZeros('200'), '200');
});

test('times are local wall-clock times; a range names its date once', () => {
  const a = local(2026, 12, 6, 14, 3, 7, 250);
  const b = local(2026, 12, 6, 14, 3, 38, 0);
  assert.equal(fmtTime(a), '14:03:07.250');
  assert.equal(fmtRange(a, b), '2026-12-06 14:03:07.250 – 14:03:38.000 (30.8 s)');
  const c = local(2026, 12, 7, 0, 0, 1, 0);
  assert.equal(fmtRange(b, c), '2026-12-06 14:03:38.000 – 2026-12-07 00:00:01.000 (9 h 56 min)');
});

test('time ticks are as precise as their spacing, with the date where a day begins', () => {
  const t = local(2026, 12, 6, 23, 59, 30, 0);
  assert.deepEqual(timeTickLabels([t, t + 30000], 30000), ['23:59:30', '00:00:00\n2026-12-07']);
  assert.deepEqual(timeTickLabels([t, t + 60000], 60000), ['23:59', '00:00\n2026-12-07']);
  assert.deepEqual(timeTickLabels([t + 250, t + 500, null], 250), ['23:59:30.25', '23:59:30.5', null]);
  assert.deepEqual(timeTickLabels([t], 86400000), ['2026-12-06']);
});

test('status classes, and counts of kinds', () => {
  assert.equal(statusClass(200), 's2xx');
  assert.equal(statusClass('404'), 's4xx');
  assert.equal(statusClass(599), 's5xx');
  for (const c of [null, undefined, 199, 600, 'x']) assert.equal(statusClass(c), 'other');
  assert.equal(countOf(7), 7);
  assert.equal(countOf({ tls: 2, http2: 3, bad: 'x' }), 5);
  assert.equal(countOf(null), 0);
  assert.equal(hasCounts({ tls: 0, binary: 1 }), true);
  assert.equal(hasCounts({ tls: 0 }), false);
  assert.equal(hasCounts(null), false);
});
