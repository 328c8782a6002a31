// @ts-check
// Numbers as people read them: bytes, counts, durations, wall-clock times, status classes.
// Pure: no DOM, so that `node --test` checks it (tests/e2e/unit/format.test.mjs).

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/**
 * A finite number (the API's fields come from a file and the network: never trusted to be one).
 * @param {unknown} v
 * @returns {v is number}
 */
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/** @param {string} s "1.50" → "1.5", "2.00" → "2"; an integer as it is. */
export function trimZeros(s) {
  return s.indexOf('.') >= 0 ? s.replace(/\.?0+$/, '') : s;
}

/**
 * "512 B", "1.5 KiB", "37.8 MiB", "−2 GiB": three significant digits at most.
 * @param {unknown} b
 */
export function fmtBytes(b) {
  if (!isNum(b)) return '–';
  const sign = b < 0 ? '−' : '';
  const a = Math.abs(b);
  if (a < KiB) return sign + a + ' B';
  /** @type {[string, number][]} */
  const units = [['KiB', KiB], ['MiB', MiB], ['GiB', GiB], ['TiB', GiB * 1024]];
  let u = units[0];
  for (const x of units) if (a >= x[1]) u = x;
  const v = a / u[1];
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return sign + trimZeros(v.toFixed(digits)) + ' ' + u[0];
}

/**
 * "37.8 → 88.8 MiB" (one unit when both share it).
 * @param {unknown} a
 * @param {unknown} b
 */
export function fmtBytesPair(a, b) {
  const x = fmtBytes(a);
  const y = fmtBytes(b);
  const ux = x.split(' ')[1];
  return ux && ux === y.split(' ')[1] ? `${x.split(' ')[0]} → ${y}` : `${x} → ${y}`;
}

/**
 * Axis label for a value in MiB, with at least `extra` more decimals than by default.
 * @param {number | null} v
 * @param {number} [extra]
 */
export function fmtMiBAxis(v, extra) {
  if (!isNum(v)) return '';
  const more = extra || 0;
  if (Math.abs(v) >= 1024) return trimZeros((v / 1024).toFixed(2 + more)) + ' GiB';
  if (Math.abs(v) >= 1) return trimZeros(v.toFixed(1 + more)) + ' MiB';
  return trimZeros((v * 1024).toFixed(more)) + ' KiB';
}

/**
 * Labels for memory ticks at `splits` (MiB): as few decimals as keep every two ticks of
 * different values apart, so that an axis over a range of a few KiB never reads
 * "21.2, 21.2, 21.3". The browser test calls it through `window.memwatch` too.
 * @param {(number | null)[]} splits
 * @returns {string[]}
 */
export function memTickLabels(splits) {
  let labels = splits.map((v) => fmtMiBAxis(v));
  // Six more decimals at most: past that, ticks would be less than a byte apart.
  for (let extra = 1; extra <= 6 && !ticksDistinct(splits, labels); extra++) {
    labels = splits.map((v) => fmtMiBAxis(v, extra));
  }
  return labels;
}

/**
 * Whether ticks of different values at `splits` have different `labels`.
 * @param {(number | null)[]} splits
 * @param {string[]} labels
 */
function ticksDistinct(splits, labels) {
  /** @type {Map<string, number>} */
  const seen = new Map();
  for (let i = 0; i < splits.length; i++) {
    const v = splits[i];
    if (!isNum(v)) continue;
    const prev = seen.get(labels[i]);
    if (prev !== undefined && prev !== v) return false;
    seen.set(labels[i], v);
  }
  return true;
}

/** @param {unknown} n "12,345", or "–" for no number. */
export function fmtInt(n) {
  return isNum(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** @param {unknown} ms A duration in milliseconds: "0.42 ms", "12.5 ms", "340 ms", "12.3 s". */
export function fmtMs(ms) {
  if (!isNum(ms)) return '–';
  if (ms < 1) return trimZeros(ms.toFixed(2)) + ' ms';
  if (ms < 100) return trimZeros(ms.toFixed(1)) + ' ms';
  if (ms < 10000) return Math.round(ms) + ' ms';
  return trimZeros((ms / 1000).toFixed(1)) + ' s';
}

/** @param {unknown} s A duration in seconds: "9.5 s", "42.1 s", "3 min 5 s", "2 h 1 min". */
export function fmtDuration(s) {
  if (!isNum(s)) return '–';
  if (s < 60) return trimZeros(s.toFixed(s < 10 ? 2 : 1)) + ' s';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h} h ${m} min` : `${m} min ${sec} s`;
}

/**
 * @param {number} n
 * @param {number} [w] digits, 2 by default
 */
const pad = (n, w) => String(n).padStart(w || 2, '0');

/** @param {unknown} ms Local wall-clock time with milliseconds, "14:03:07.250". */
export function fmtTime(ms) {
  if (!isNum(ms)) return '–';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** @param {number} ms The local date, "2026-12-06". */
export function fmtDate(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/**
 * "2026-12-06 14:03:07.250 – 14:03:38.000 (30.8 s)": the date once when both ends share it.
 * @param {number} from epoch ms
 * @param {number} to epoch ms
 */
export function fmtRange(from, to) {
  const sameDay = fmtDate(from) === fmtDate(to);
  const a = fmtDate(from) + ' ' + fmtTime(from);
  const b = sameDay ? fmtTime(to) : fmtDate(to) + ' ' + fmtTime(to);
  return `${a} – ${b} (${fmtDuration((to - from) / 1000)})`;
}

/**
 * 24-hour local time labels for ticks at `splits` (epoch ms) `incr` apart, as precise as the
 * spacing needs, with the date under the first tick of each new day.
 * @param {(number | null)[]} splits
 * @param {number} incr
 * @returns {(string | null)[]}
 */
export function timeTickLabels(splits, incr) {
  /** @type {string | null} */
  let prevDay = null;
  return splits.map((v) => {
    if (!isNum(v)) return null;
    const d = new Date(v);
    const day = fmtDate(v);
    let s;
    if (incr >= 86400000) s = day;
    else if (incr >= 60000) s = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    else if (incr >= 1000) s = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    else s = fmtTime(v).replace(/\.?0+$/, '');
    if (incr < 86400000 && prevDay !== null && day !== prevDay) s += '\n' + day;
    prevDay = day;
    return s;
  });
}

/** @typedef {'s2xx' | 's3xx' | 's4xx' | 's5xx' | 'other'} StatusClass */

/**
 * The class of an HTTP status, `other` for none or one outside 200..599.
 * @param {unknown} code a number, or a status as an object key ("404")
 * @returns {StatusClass}
 */
export function statusClass(code) {
  const c = Number(code);
  if (!Number.isFinite(c) || c < 200 || c >= 600) return 'other';
  return /** @type {StatusClass} */ ('s' + Math.floor(c / 100) + 'xx');
}

/**
 * A count, or the sum of a `{kind: count}` object's counts; 0 for anything else.
 * @param {unknown} v
 */
export function countOf(v) {
  if (isNum(v)) return v;
  if (v && typeof v === 'object') return Object.values(v).reduce((a, x) => a + (isNum(x) ? x : 0), 0);
  return 0;
}

/**
 * Whether a `{kind: count}` object counts anything.
 * @param {unknown} obj
 * @returns {obj is Record<string, unknown>}
 */
export function hasCounts(obj) {
  return !!obj && typeof obj === 'object' && Object.values(obj).some((v) => isNum(v) && v > 0);
}

