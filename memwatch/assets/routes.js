// @ts-check
// The routes table, from /api/endpoints: sorted by what routes keep (as the report ranks them)
// or by any column, each row with its status mix, kept and retained memory, the regression's
// estimate beside it, faults, address space and durations; under it, how the range's figures
// reconcile with the resident set, whether the heap was followed, and the regression's fit.

import { $, clear, el, numCell, renderCounts, table, tbodyOf } from './dom.js';
import { fmtBytes, fmtInt, fmtMs, fmtRange, hasCounts, isNum, statusClass } from './format.js';
import { CLASSES } from './series.js';
import { runBounds, state } from './state.js';

/**
 * How much of a route's traffic failed, 5xx weighing a thousand 4xx: for sorting.
 * @param {Pick<import('./api.js').Endpoint, 'statuses'>} e
 */
export function errorShare(e) {
  const st = e.statuses && typeof e.statuses === 'object' ? e.statuses : {};
  let err = 0;
  let all = 0;
  for (const [k, v] of Object.entries(st)) {
    if (!isNum(v)) continue;
    all += v;
    const c = statusClass(k);
    if (c === 's5xx') err += v * 1000;
    else if (c === 's4xx') err += v;
  }
  return all ? err / all : 0;
}

/**
 * What a column sorts a route by.
 * @param {import('./api.js').Endpoint} e
 * @param {string} key the column's `data-sort`
 * @returns {number | string}
 */
function sortValue(e, key) {
  if (key === 'errors') return errorShare(e);
  // What is kept ranks first, as in the report: per further request, then in total. A
  // recording without retained figures (before schema 3, or --no-ebpf) ranks by faulted bytes.
  if (key === 'kept_per_request_bytes') {
    if (e.retention === 'unknown') return isNum(e.rss_bytes) ? e.rss_bytes : -Infinity;
    const kept = isNum(e.kept_per_request_bytes) ? e.kept_per_request_bytes : 0;
    const total = isNum(e.retained_bytes) ? e.retained_bytes : 0;
    return kept * 1e6 + total / 1e6;
  }
  if (key === 'regression') {
    const r = e.regression;
    return r && isNum(r.kept_per_request_bytes) ? r.kept_per_request_bytes : -Infinity;
  }
  const v = /** @type {Record<string, unknown>} */ (e)[key];
  return typeof v === 'string' ? v.toLowerCase() : isNum(v) ? v : -Infinity;
}

/**
 * Whether a route has enough requests (5) for what it keeps to be judged.
 * @param {import('./api.js').Endpoint} e
 */
function judged(e) {
  return isNum(e.requests) && e.requests >= 5;
}

/**
 * The routes in the table's order: by `sort.key`, `sort.dir` 1 ascending or -1 descending,
 * then by route and method. By what is kept, a route with too few requests to judge ranks after
 * every other, as in the report, whichever way the column is sorted.
 * @param {import('./api.js').Endpoint[]} endpoints
 * @param {{key: string, dir: number}} sort
 */
export function sortEndpoints(endpoints, sort) {
  const list = endpoints.slice();
  const { key, dir } = sort;
  list.sort((a, b) => {
    if (key === 'kept_per_request_bytes') {
      const ja = judged(a);
      const jb = judged(b);
      if (ja !== jb) return ja ? -1 : 1;
    }
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    if (x < y) return -dir;
    if (x > y) return dir;
    return String(a.route).localeCompare(String(b.route)) || String(a.method).localeCompare(String(b.method));
  });
  return list;
}

/**
 * The status mix as a bar and its two commonest codes.
 * @param {import('./api.js').Endpoint} e
 */
function statusCell(e) {
  const td = el('td', 'status');
  const wrap = el('span', 'status-wrap');
  td.appendChild(wrap);
  const st = e.statuses && typeof e.statuses === 'object' ? e.statuses : {};
  const entries = Object.entries(st).filter(([, v]) => isNum(v) && v > 0).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((a, [, v]) => a + v, 0);
  /** @type {Record<string, number>} */
  const byClass = {};
  for (const [k, v] of entries) byClass[statusClass(k)] = (byClass[statusClass(k)] || 0) + v;
  const bar = el('span', 'mix');
  for (const c of CLASSES) {
    if (!byClass[c.key]) continue;
    const seg = el('span', 'seg seg-' + c.key);
    seg.style.width = ((byClass[c.key] / total) * 100).toFixed(2) + '%';
    bar.appendChild(seg);
  }
  wrap.appendChild(bar);
  const text = entries.slice(0, 2).map(([k, v]) => `${k}×${fmtInt(v)}`).join(' ');
  wrap.appendChild(el('span', 'mix-text', text + (entries.length > 2 ? ` +${entries.length - 2}` : '')));
  td.title = entries.map(([k, v]) => `${k}: ${fmtInt(v)}`).join('\n');
  return td;
}

/**
 * The regression's estimate beside the origin figure, with its interval and any disagreement.
 * @param {import('./api.js').Endpoint} e
 */
function regressionCell(e) {
  const r = e.regression;
  if (!r || typeof r !== 'object' || !isNum(r.kept_per_request_bytes)) {
    return numCell('–', 'bytes regression', 'no regression estimate: the range is too short, or has too few intervals, to fit');
  }
  const lo = r.kept_per_request_low_bytes;
  const hi = r.kept_per_request_high_bytes;
  const interval = isNum(lo) && isNum(hi)
    ? `95% interval ${fmtBytes(lo)} to ${fmtBytes(hi)}`
    : 'no interval: its request counts moved with another route\'s, too closely to tell apart';
  const td = numCell(fmtBytes(r.kept_per_request_bytes), 'bytes regression',
    `${fmtInt(r.kept_per_request_bytes)} bytes kept per request by regression; ${interval}`);
  const d = disagreementOf(e);
  if (d) {
    const b = el('span', 'disagree', ' ≠');
    b.title = `the origin figure (${fmtBytes(d.origin_bytes)}) and the regression (${fmtBytes(d.regression_bytes)}) ` +
      `disagree beyond their bounds; trust the ${String(d.trust)}: ${String(d.why)}`;
    td.appendChild(b);
    td.classList.add('disagrees');
  }
  return td;
}

/**
 * Where the regression disagrees with the origin figure on route `e`, if it does.
 * @param {import('./api.js').Endpoint} e
 */
function disagreementOf(e) {
  const ret = state.endpoints && state.endpoints.retained;
  const reg = ret && typeof ret === 'object' ? ret.regression : null;
  const list = reg && Array.isArray(reg.disagreements) ? reg.disagreements : [];
  return list.find((d) => d && d.route === e.route && d.method === e.method) || null;
}

/**
 * The kept-per-request cell, marked `~` when the heap budget sampled the route.
 * @param {import('./api.js').Endpoint} e
 * @param {HTMLTableRowElement} tr its row, marked too
 */
function keptCell(e, tr) {
  const known = e.retention !== 'unknown';
  const kept = numCell(known ? fmtBytes(e.kept_per_request_bytes) : '–', 'bytes group-start strong',
    known ? `${fmtInt(e.kept_per_request_bytes)} bytes kept per further request` : 'this recording has no retained-memory figures');
  const sm = e.sampled;
  if (known && sm && typeof sm === 'object') {
    // The heap budget followed part of this route's requests: the figure is sampled.
    const b = el('span', 'sampled', ' ~');
    const interval = isNum(sm.kept_per_request_low_bytes) && isNum(sm.kept_per_request_high_bytes)
      ? `; 95% interval ${fmtBytes(sm.kept_per_request_low_bytes)} to ${fmtBytes(sm.kept_per_request_high_bytes)}`
      : '';
    b.title = `sampled: the heap probes followed ${fmtInt(sm.followed_requests)} of ` +
      `${fmtInt(e.requests)} requests (their budget was spent), and kept per request rests on those${interval}`;
    kept.appendChild(b);
    tr.classList.add('sampled-row');
  }
  if (known && e.kept_from === 'regression') {
    // The figure is the regression's: a JVM's, or requests that shared a thread.
    const b = el('span', 'sampled', ' ®');
    b.title = 'by regression: the live heap fitted against the routes\' request counts, as ' +
      'neither page faults nor the heap probes could tell this route\'s memory from its ' +
      'neighbours\' (a JVM\'s objects, or requests sharing an event loop\'s thread)';
    kept.appendChild(b);
  }
  const sh = e.sampled_heap;
  if (known && e.kept_from === 'sampled_heap' && sh && typeof sh === 'object') {
    // The figure is a Go program's own sampled heap.
    const b = el('span', 'sampled', ' ≈');
    b.title = `by Go's sampled heap: the allocations its runtime sampled, each weighed by what it ` +
      `stands for, not freed by the range's end (${fmtInt(sh.samples_kept)} of ` +
      `${fmtInt(sh.samples)} samples kept over ${fmtInt(sh.requests)} requests judged); 95% ` +
      `interval ${fmtBytes(sh.kept_per_request_low_bytes)} to ${fmtBytes(sh.kept_per_request_high_bytes)}`;
    kept.appendChild(b);
  }
  return kept;
}

/**
 * One route's row.
 * @param {import('./api.js').Endpoint} e
 */
function routeRow(e) {
  const tr = el('tr', 'route-row');
  const route = String(e.route == null ? '' : e.route);
  const method = String(e.method == null ? '' : e.method);
  tr.dataset.route = route;
  tr.dataset.method = method;
  tr.tabIndex = 0;
  if (state.route && state.route.route === route && state.route.method === method) tr.classList.add('selected');

  tr.appendChild(el('td', 'method', method));
  const rc = el('td', 'route');
  rc.appendChild(el('span', 'route-text', route));
  rc.title = route;
  if (isNum(e.approximate) && e.approximate > 0) {
    const b = el('span', 'approx', '≈');
    b.title = `${fmtInt(e.approximate)} of ${fmtInt(e.requests)} requests approximately attributed: on event loops ` +
      'and pipelined connections, memory goes to the request most recently read on the thread';
    rc.appendChild(b);
    tr.classList.add('approximate');
  }
  tr.appendChild(rc);
  tr.appendChild(numCell(fmtInt(e.requests), 'requests'));
  tr.appendChild(statusCell(e));
  const known = e.retention !== 'unknown';
  tr.appendChild(keptCell(e, tr));
  tr.appendChild(regressionCell(e));
  tr.appendChild(numCell(known ? fmtBytes(e.retained_bytes) : '–', 'bytes',
    known ? `${fmtInt(e.retained_bytes)} bytes retained: ${fmtInt(e.grown_bytes)} made resident, ${fmtInt(e.released_bytes)} released` : ''));
  tr.appendChild(el('td', 'left shape shape-' + String(e.retention), String(e.retention)));
  tr.appendChild(numCell(fmtBytes(e.rss_bytes), 'bytes group-start', `${fmtInt(e.rss_bytes)} bytes, ${fmtInt(e.page_faults)} page faults`));
  tr.appendChild(numCell(fmtBytes(e.rss_bytes_mean), 'bytes'));
  tr.appendChild(numCell(fmtBytes(e.vm_bytes), 'bytes group-start', `${fmtInt(e.vm_bytes)} bytes, ${fmtInt(e.mem_calls)} memory calls`));
  tr.appendChild(numCell(fmtBytes(e.vm_bytes_mean), 'bytes'));
  tr.appendChild(numCell(fmtMs(e.duration_ms_p50), 'group-start'));
  tr.appendChild(numCell(fmtMs(e.duration_ms_p95)));
  return tr;
}

/** Draws the last /api/endpoints answer: the table and the range's figures under it. */
export function renderRoutes() {
  const tbody = tbodyOf('routes');
  clear(tbody);
  const all = state.endpoints && Array.isArray(state.endpoints.endpoints) ? state.endpoints.endpoints : [];
  const list = sortEndpoints(all, state.sort);
  $('routes-empty').hidden = list.length > 0 || !state.endpoints;
  for (const e of list) tbody.appendChild(routeRow(e));
  renderSortIndicators();
  renderExtras(state.endpoints);
}

/**
 * Under the table: how the range's figures reconcile with the resident set, the heap, the
 * regression's fit, non-HTTP traffic and unmatched access-log lines.
 * @param {import('./api.js').Endpoints | null} ep
 */
function renderExtras(ep) {
  const extras = $('range-extras');
  clear(extras);
  if (ep) {
    const r = ep.retained;
    if (r && typeof r === 'object') {
      extras.appendChild(reconciliation(r));
      const heap = r.heap;
      if (heap && typeof heap === 'object') extras.appendChild(heapExtra(heap));
    }
    const reg = r && typeof r === 'object' ? r.regression : null;
    if (reg && typeof reg === 'object') extras.appendChild(regressionExtra(reg));
    if (hasCounts(ep.non_http)) {
      const g = el('span', 'extra');
      g.appendChild(el('span', 'extra-label', 'Non-HTTP traffic in range'));
      const chips = el('span', 'chips');
      renderCounts(chips, ep.non_http);
      g.appendChild(chips);
      extras.appendChild(g);
    }
    if (isNum(ep.unmatched_lines) && ep.unmatched_lines > 0) {
      const g = el('span', 'extra');
      g.appendChild(el('span', 'extra-label', 'Unmatched access-log lines in range'));
      g.appendChild(el('span', 'count-chip', fmtInt(ep.unmatched_lines)));
      extras.appendChild(g);
    }
  }
  extras.hidden = extras.childNodes.length === 0;
}

/**
 * How the range's figures reconcile with the resident set: nothing lost silently.
 * @param {import('./api.js').RetainedTotals} r
 */
function reconciliation(r) {
  const g = el('span', 'extra');
  g.appendChild(el('span', 'extra-label', 'Resident set in range'));
  g.appendChild(el('span', 'count-chip',
    `changed ${fmtBytes(r.rss_change_bytes)}: routes kept ${fmtBytes(r.retained_bytes)}, ` +
    `outside requests ${fmtBytes(r.outside_grown_bytes - r.outside_released_bytes)}, ` +
    `earlier requests' memory released ${fmtBytes(r.released_from_before_bytes)}, ` +
    `not accounted for ${fmtBytes(r.unexplained_bytes)}`));
  g.title = `releases of unknown origin: ${fmtInt(r.unmatched_release_bytes)} bytes; ` +
    (r.unseen_release_bytes == null ? '' :
      `address space released, never seen resident: ` +
      `${fmtInt(r.unseen_release_bytes)} bytes; `) +
    `growth not tracked (bound): ${fmtInt(r.untracked_bytes)} bytes`;
  return g;
}

/**
 * Whether heap reuse was followed: without it, a route that reuses another's freed heap can
 * swap places with it in the ranking. Said, not hidden.
 * @param {import('./api.js').HeapFollowed} heap
 */
function heapExtra(heap) {
  const h = el('span', 'extra');
  h.appendChild(el('span', 'extra-label', 'Heap'));
  /** @param {unknown} v */
  const pct = (v) => (isNum(v) ? `${(v * 100).toFixed(1)}%` : '?');
  const sampling = heap.sampling && typeof heap.sampling === 'object' ? heap.sampling : null;
  h.appendChild(el('span', heap.followed && !sampling ? 'count-chip' : 'count-chip warn',
    heap.followed
      ? `followed: ${fmtInt(heap.blocks)} blocks changed hands` +
        (heap.processes_not_followed > 0 ? `, ${fmtInt(heap.processes_not_followed)} processes not followed` : '') +
        (heap.runtimes_not_followed > 0
          ? `, ${fmtInt(heap.runtimes_not_followed)} collected runtimes not followed` : '') +
        (isNum(heap.cost_share) ? `; probes cost ${pct(heap.cost_share)} of a core (budget ${pct(heap.budget_share)})` : '') +
        (isNum(heap.collections) && heap.collections > 0
          ? `; ${fmtInt(heap.collections)} collections seen, ${fmtInt(heap.collections_recorded)} recorded` : '') +
        (heap.go_samples && typeof heap.go_samples === 'object'
          ? `; Go's sampled heap: ${fmtInt(heap.go_samples.samples)} allocations sampled, ` +
            `${fmtInt(heap.go_samples.samples_outside)} outside any request, ${fmtInt(heap.go_samples.freed)} freed` : '') +
        (sampling
          ? `; SAMPLED: on ${pct(heap.on_fraction)} of the time, ` +
            `${fmtInt(sampling.requests_followed)} of ${fmtInt(sampling.requests_followed + sampling.requests_sampled_out)} requests followed`
          : '')
      : 'not followed (recorded with --no-heap)'));
  if (typeof heap.note === 'string') h.title = heap.note;
  return h;
}

/**
 * What a regression fitted, in words: the report's `retained.regression.signal`, which came
 * from the recording and is shown as text whatever it is.
 * @param {unknown} signal
 */
export function signalLabel(signal) {
  switch (signal) {
    case 'live_heap': return 'live heap the runtime reported after each collection';
    case 'swept_heap': return 'followed heap as each collection left it';
    case 'kept_heap': return 'followed heap each collection kept';
    case 'kept_spans': return 'followed spans each collection kept';
    case 'heap': return 'followed heap';
    case 'rss': return 'resident set';
    default: return String(signal);
  }
}

/**
 * The second estimate's fit: how much of the resident set it explains, what it cannot
 * separate, and where it disagrees with the origin figures.
 * @param {import('./api.js').RegressionFit} reg
 */
function regressionExtra(reg) {
  const g = el('span', 'extra');
  g.appendChild(el('span', 'extra-label', 'Regression'));
  const disagreements = Array.isArray(reg.disagreements) ? reg.disagreements : [];
  const collinear = Array.isArray(reg.collinear) ? reg.collinear : [];
  const overlapping = Array.isArray(reg.overlapping) ? reg.overlapping : [];
  const weak = !isNum(reg.explained) || reg.explained < 0.5;
  const warn = disagreements.length || weak || collinear.length || overlapping.length;
  g.appendChild(el('span', warn ? 'count-chip warn' : 'count-chip',
    `${fmtInt(reg.intervals)} intervals of ${fmtMs(reg.interval_ms)}, explains ` +
    `${isNum(reg.explained) ? (reg.explained * 100).toFixed(0) : '?'}% of the ${signalLabel(reg.signal)}` +
    (collinear.length ? `; cannot separate ${collinear.map(String).join(', ')}` : '') +
    (overlapping.length ? `; too loose to rank ${overlapping.map(String).join(', ')}: the origin's figures stand` : '') +
    (disagreements.length ? `; disagrees with the origin figure on ${fmtInt(disagreements.length)} route(s)` : '')));
  g.title = disagreements.map((d) => `${String(d.method)} ${String(d.route)}: origin ${fmtBytes(d.origin_bytes)}, ` +
    `regression ${fmtBytes(d.regression_bytes)}; trust the ${String(d.trust)}: ${String(d.why)}`).join('\n');
  return g;
}

/** The sorted column's arrow, and `aria-sort` on every sortable column. */
export function renderSortIndicators() {
  const head = table('routes').tHead;
  if (!head) return;
  for (const th of head.querySelectorAll('th[data-sort]')) {
    if (!(th instanceof HTMLElement)) continue;
    const on = th.dataset.sort === state.sort.key;
    th.classList.toggle('sorted', on);
    th.setAttribute('aria-sort', on ? (state.sort.dir < 0 ? 'descending' : 'ascending') : 'none');
    th.dataset.dir = on ? (state.sort.dir < 0 ? '▼' : '▲') : '';
  }
}

/**
 * Sorts by the column clicked in `ev`, or the other way when it is the sorted one already.
 * @param {Event} ev
 */
export function onSortClick(ev) {
  const th = ev.target instanceof Element ? ev.target.closest('th[data-sort]') : null;
  if (!(th instanceof HTMLElement) || th.dataset.sort === undefined) return;
  const key = th.dataset.sort;
  if (state.sort.key === key) state.sort.dir = -state.sort.dir;
  else state.sort = { key, dir: key === 'method' || key === 'route' ? 1 : -1 };
  renderRoutes();
}

/**
 * The route of the row `ev` happened in, if any.
 * @param {Event} ev
 * @returns {import('./state.js').RouteKey | null}
 */
export function routeOfEvent(ev) {
  const tr = ev.target instanceof Element ? ev.target.closest('tr.route-row') : null;
  if (!(tr instanceof HTMLElement)) return null;
  return { method: tr.dataset.method || '', route: tr.dataset.route || '' };
}

/**
 * Marks the row of `key` as selected (none for null).
 * @param {import('./state.js').RouteKey | null} key
 */
export function markSelectedRow(key) {
  for (const tr of tbodyOf('routes').rows) {
    tr.classList.toggle('selected', !!key && tr.dataset.method === key.method && tr.dataset.route === key.route);
  }
}

/** The routes card's title: the selected range, or the whole run's. */
export function renderSelectionLabel() {
  const label = $('selection');
  if (state.sel) {
    label.textContent = fmtRange(state.sel.from, state.sel.to);
    label.classList.add('active');
  } else {
    const b = runBounds();
    label.textContent = b ? 'whole run · ' + fmtRange(b.from, b.to) : 'whole run';
    label.classList.remove('active');
  }
}
