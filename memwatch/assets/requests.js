// @ts-check
// The clicked route's card: its requests from /api/requests, newest first, each with its
// memory figures; hovering one marks it on the chart.

import { redrawChart } from './chart.js';
import { $, clear, el, numCell, tbodyOf } from './dom.js';
import { fmtBytes, fmtInt, fmtMs, fmtTime, isNum, statusClass } from './format.js';
import { state } from './state.js';

/**
 * Opens the card for `method route`, empty until its requests come.
 * @param {string} method
 * @param {string} route
 */
export function openRequests(method, route) {
  $('requests-route').textContent = `${method} ${route}`;
  $('requests-meta').textContent = 'loading…';
  clear(tbodyOf('requests'));
  $('requests-card').hidden = false;
}

export function closeRequests() {
  $('requests-card').hidden = true;
}

/**
 * "newest 500 of 1,204 in the selected range", or "12 requests in the whole run".
 * @param {import('./api.js').Requests} r
 * @param {number} listed
 * @param {boolean} selected whether a range is selected
 */
export function requestsMeta(r, listed, selected) {
  const total = isNum(r.total) ? r.total : listed;
  return (r.truncated || total > listed ? `newest ${fmtInt(listed)} of ${fmtInt(total)}` : `${fmtInt(total)} request${total === 1 ? '' : 's'}`) +
    (selected ? ' in the selected range' : ' in the whole run') + ' · highlighted on the chart';
}

/** Draws the last /api/requests answer. */
export function renderRequests() {
  const r = state.requests;
  const tbody = tbodyOf('requests');
  clear(tbody);
  if (!r) return;
  const list = Array.isArray(r.requests) ? r.requests : [];
  $('requests-meta').textContent = requestsMeta(r, list.length, !!state.sel);
  for (const q of list) tbody.appendChild(requestRow(q));
}

/** @param {import('./api.js').Request} q */
function requestRow(q) {
  const tr = el('tr', 'request-row');
  tr.appendChild(el('td', 'time', fmtTime(q.start_ms)));
  tr.appendChild(el('td', 'pid', `${q.pid} / ${q.tid}`));
  tr.appendChild(el('td', 'method', q.method));
  const tc = el('td', 'target');
  tc.appendChild(el('span', 'target-text', q.target));
  const tip = [String(q.target)];
  if (q.host) tip.push(`host: ${q.host}`);
  if (q.user_agent) tip.push(`user agent: ${q.user_agent}`);
  if (isNum(q.id)) tip.push(`request #${q.id}`);
  tc.title = tip.join('\n');
  if (q.user_agent) tc.appendChild(el('span', 'ua', q.user_agent));
  tr.appendChild(tc);
  const sc = el('td', 'num');
  sc.appendChild(el('span', 'code code-' + statusClass(q.status), q.status == null ? '–' : q.status));
  tr.appendChild(sc);
  tr.appendChild(numCell(fmtBytes(q.bytes_in)));
  tr.appendChild(numCell(fmtBytes(q.bytes_out)));
  tr.appendChild(numCell(fmtMs(q.duration_ms)));
  tr.appendChild(numCell(fmtBytes(q.vm_bytes), '', `${fmtInt(q.vm_bytes)} bytes of address space mapped`));
  tr.appendChild(numCell(fmtBytes(q.rss_bytes), '', `${fmtInt(q.rss_bytes)} bytes: page faults × the page size, gross`));
  // Recordings without retained figures (before schema 3, or --no-ebpf) have null here.
  const known = isNum(q.grown_bytes) && isNum(q.retained_bytes);
  tr.appendChild(numCell(known ? fmtBytes(q.grown_bytes) : '–', 'bytes',
    known ? `${fmtInt(q.grown_bytes)} bytes made resident, each page once` : 'this recording has no retained-memory figures'));
  tr.appendChild(numCell(known ? fmtBytes(q.retained_bytes) : '–', 'bytes strong',
    known ? `${fmtInt(q.retained_bytes)} bytes still held at the end of the ${state.sel ? 'selected range' : 'run'}: ` +
      `${fmtInt(q.grown_bytes)} made resident, ${fmtInt(q.released_bytes)} released` : ''));
  const ex = el('td', 'center exact');
  if (q.exact === false) {
    const b = el('span', 'approx', '≈');
    b.title = 'approximately attributed: another request was read on the same thread in the meantime';
    ex.appendChild(b);
  } else {
    ex.appendChild(el('span', 'check', '✓'));
    ex.title = 'exact';
  }
  tr.appendChild(ex);
  tr.addEventListener('mouseenter', () => {
    state.hoverReq = q;
    redrawChart();
  });
  tr.addEventListener('mouseleave', () => {
    if (state.hoverReq === q) state.hoverReq = null;
    redrawChart();
  });
  return tr;
}
