// @ts-check
// What the charts draw, worked out from the API's answers: memory series in MiB, the request
// lane's stacked bars, the retained-memory lines by route, the y ranges, how many points to ask
// for, and the range a drag selects. Pure: no DOM and no uPlot, so that `node --test` checks it
// (tests/e2e/unit/series.test.mjs); chart.js draws it.

import { MiB, fmtBytes, fmtInt, fmtMs, fmtTime, isNum } from './format.js';

export const COLOR = {
  rss: '#5b3cc4',
  rssFill: 'rgba(91, 60, 196, 0.09)',
  vm: '#7b8794',
  s2xx: '#2f9e44',
  s3xx: '#1c7ed6',
  s4xx: '#f08c00',
  s5xx: '#e03131',
  other: '#adb5bd',
  /** @type {Record<string, string>} */
  mem: { mmap: '#d9480f', mremap: '#ae3ec9', brk: '#0b7285', munmap: '#1971c2' },
  hl: 'rgba(214, 51, 108, 0.20)',
  hlEdge: 'rgba(214, 51, 108, 0.85)',
  hlHover: 'rgba(214, 51, 108, 0.45)',
  /** Retained memory by route: one colour per route, most retained first. */
  retained: ['#d6336c', '#0ca678', '#f08c00', '#1c7ed6', '#ae3ec9', '#e8590c', '#2b8a3e', '#364fc7', '#c2255c', '#087f5b'],
  retainedOther: '#868e96',
  retainedOutside: '#495057',
};

/**
 * Status classes in the order the lane stacks them, top first.
 * @type {{key: import('./format.js').StatusClass, label: string}[]}
 */
export const CLASSES = [
  { key: 's2xx', label: '2xx' },
  { key: 's3xx', label: '3xx' },
  { key: 's4xx', label: '4xx' },
  { key: 's5xx', label: '5xx' },
  { key: 'other', label: 'other' },
];

/** A drag narrower than this many pixels is a click: it selects nothing. */
export const MIN_SELECT_PX = 3;

/**
 * Byte counts in MiB, the charts' unit; null where there is no number.
 * @param {unknown[]} arr
 * @returns {(number | null)[]}
 */
export function toMiB(arr) {
  return arr.map((v) => (isNum(v) ? v / MiB : null));
}

/**
 * A `{t, v}` answer as `[times, MiB]` columns of the same length.
 * @param {Partial<import('./api.js').Samples> | null | undefined} obj
 * @returns {[number[], (number | null)[]]}
 */
export function seriesOf(obj) {
  const t = obj && Array.isArray(obj.t) ? obj.t : [];
  const v = obj && Array.isArray(obj.v) ? obj.v : [];
  const n = Math.min(t.length, v.length);
  return [t.slice(0, n), toMiB(v.slice(0, n))];
}

/**
 * Each gap (null) of `column` filled with the value before it. Retained memory is cumulative
 * and holds until its next bucket: carried to the memory samples in between, the legend reads
 * it anywhere on the chart.
 * @param {ArrayLike<number | null | undefined>} column
 * @returns {(number | null)[]}
 */
export function carryForward(column) {
  /** @type {number | null} */
  let prev = null;
  return Array.from(column, (v) => (v == null ? prev : (prev = v)));
}

/**
 * @typedef {object} Lane
 * @property {Record<import('./format.js').StatusClass, number[]>} raw requests per bucket by class
 * @property {number[]} xs each bucket's middle
 * @property {number[][]} stacks per class (in CLASSES order), that class and every one after it
 *   summed: drawn over each other, the top is 2xx and the bottom holds errors, so that rare 5xx
 *   stay visible next to thousands of 2xx
 */

/**
 * The request lane's bars from the timeline's request buckets.
 * @param {Partial<import('./api.js').RequestBuckets> | null | undefined} r
 * @returns {Lane}
 */
export function laneOf(r) {
  const b = r || {};
  const t = Array.isArray(b.t) ? b.t : [];
  const w = isNum(b.width_ms) ? b.width_ms : 0;
  /** @type {Record<string, number[]>} */
  const raw = {};
  for (const c of CLASSES) {
    const col = b[c.key];
    raw[c.key] = t.map((_, i) => (Array.isArray(col) && isNum(col[i]) ? col[i] : 0));
  }
  const xs = t.map((v) => v + w / 2);
  const stacks = CLASSES.map((c, ci) => t.map((_, i) => {
    let sum = 0;
    for (let k = ci; k < CLASSES.length; k++) sum += raw[CLASSES[k].key][i];
    return sum;
  }));
  return { raw: /** @type {Lane['raw']} */ (raw), xs, stacks };
}

/**
 * A retained-memory line the chart draws over the resident set.
 * @typedef {object} RetainedLine
 * @property {string} key the same for the same route on every draw
 * @property {string} text legend text
 * @property {string} title legend tooltip
 * @property {boolean} [route] whether it is one route's
 * @property {string} stroke
 * @property {number[] | null} dash
 * @property {number[]} t
 * @property {number[]} v
 */

/**
 * The retained-memory lines to draw from a /api/retained answer: the top routes, then the other
 * routes and memory made outside requests when they hold anything. Every line has the answer's
 * `t` and a same-length `v`; a series that does not fit is left out.
 * @param {Partial<import('./api.js').Retained> | null} r
 * @returns {RetainedLine[]}
 */
export function retainedLines(r) {
  if (!r || !Array.isArray(r.t) || r.t.length === 0) return [];
  const t = r.t;
  /** @param {unknown} v */
  const fit = (v) => (Array.isArray(v) && v.length === t.length && v.every(isNum) ? v : null);
  /** @type {RetainedLine[]} */
  const out = [];
  const routes = Array.isArray(r.routes) ? r.routes : [];
  routes.forEach((x, i) => {
    const v = fit(x && x.v);
    if (!v) return;
    const method = String(x.method == null ? '' : x.method);
    const route = String(x.route == null ? '' : x.route);
    out.push({
      key: 'route ' + JSON.stringify([method, route]),
      text: `${method} ${route}`,
      title: `Retained by ${method} ${route}: memory its requests made resident and still held at that time (whole seconds)`,
      route: true,
      stroke: COLOR.retained[i % COLOR.retained.length],
      dash: i < COLOR.retained.length ? null : [6, 3],
      t,
      v,
    });
  });
  /** @param {number[] | null} v */
  const some = (v) => v && v.some((x) => x !== 0);
  const other = fit(r.other);
  if (other && some(other)) {
    out.push({ key: 'other', text: 'other routes', title: 'Retained by every other route, summed', stroke: COLOR.retainedOther, dash: [5, 3], t, v: other });
  }
  const outside = fit(r.outside);
  if (outside && some(outside)) {
    out.push({ key: 'outside', text: 'outside requests', title: 'Memory made resident while no request was served (startup, background threads, collectors), less what was released of it', stroke: COLOR.retainedOutside, dash: [2, 3], t, v: outside });
  }
  return out;
}

/**
 * A memory axis's range: the data with 8% room above and below, never below 0.
 * @param {number | null} min
 * @param {number | null} max
 * @returns {[number, number]}
 */
export function yRangePadded(min, max) {
  if (!isNum(min) || !isNum(max)) return [0, 1];
  if (min === max) {
    const d = Math.max(Math.abs(max) * 0.05, 1);
    return [Math.max(0, min - d), max + d];
  }
  const pad = (max - min) * 0.08;
  return [Math.max(0, min - pad), max + pad];
}

/**
 * How many points to ask the timeline for: about one request bucket (and one min/max pair of
 * memory samples) per two pixels, and never buckets shorter than a millisecond (the API's times
 * are whole milliseconds).
 * @param {number} plotPx the plot's width in CSS pixels, axes excluded
 * @param {import('./state.js').Range | null} range
 */
export function timelinePoints(plotPx, range) {
  let n = Math.round(plotPx);
  if (range) n = Math.min(n, 2 * Math.max(1, Math.floor(range.to - range.from)));
  return Math.max(2, Math.min(10000, n));
}

/**
 * The range a drag from `left` over `width` pixels selects, in whole milliseconds (the API's
 * unit) that cover it; null for a click.
 * @param {number} left
 * @param {number} width
 * @param {(px: number) => number} posToVal pixel to epoch ms
 * @returns {import('./state.js').Range | null}
 */
export function dragRange(left, width, posToVal) {
  if (width < MIN_SELECT_PX) return null;
  return { from: Math.floor(posToVal(left)), to: Math.ceil(posToVal(left + width)) };
}

/**
 * "12 requests in 100 ms (2xx 11, 5xx 1)": one lane bucket.
 * @param {Record<string, number[]>} raw requests per bucket by class
 * @param {number} i the bucket
 * @param {number} widthMs
 */
export function bucketText(raw, i, widthMs) {
  const counts = CLASSES.map((c) => /** @type {[string, number]} */ ([c.label, raw[c.key][i]])).filter(([, n]) => n > 0);
  const total = counts.reduce((a, [, n]) => a + n, 0);
  return (total ? `${fmtInt(total)} request${total === 1 ? '' : 's'}` : 'no requests') + ` in ${fmtMs(widthMs)}` +
    (counts.length ? ' (' + counts.map(([l, n]) => `${l} ${fmtInt(n)}`).join(', ') + ')' : '');
}

/**
 * The memory events under the cursor, largest first: three named, the rest counted.
 * @param {import('./api.js').MemEvent[]} near
 */
export function memEventsText(near) {
  const sorted = near.slice().sort((a, b) => Math.abs(b.bytes) - Math.abs(a.bytes));
  const shown = sorted.slice(0, 3).map((e) => `${e.op} ${e.bytes >= 0 ? '+' : ''}${fmtBytes(e.bytes)} (pid ${e.pid}, ${fmtTime(e.t)})`);
  if (sorted.length > 3) shown.push(`${sorted.length - 3} more`);
  return shown.join(', ');
}
