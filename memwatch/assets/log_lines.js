// @ts-check
// The access-log card, from /api/log_lines: lines that matched no captured request, and lines
// that did not parse, with why. Shown only for a recording that followed an access log.

import { $, clear, el, tbodyOf } from './dom.js';
import { fmtInt, fmtTime, isNum } from './format.js';
import { LOG_LIMIT, state } from './state.js';

/**
 * The text a line's cell shows: what was parsed of it, else the raw line.
 * @param {import('./api.js').LogLine} l
 */
export function lineText(l) {
  if (l.ok || l.method || l.target) {
    return [l.method, l.target, l.status].filter((x) => x !== null && x !== undefined && x !== '').join(' ');
  }
  return l.raw == null ? '' : String(l.raw);
}

/** Draws the last /api/log_lines answer. */
export function renderLogLines() {
  const card = $('log-card');
  const lines = state.logLines && Array.isArray(state.logLines.lines) ? state.logLines.lines : [];
  const s = state.summary;
  const hasLog = !!(s && s.access_log) || lines.length > 0;
  card.hidden = !hasLog;
  if (!hasLog) return;
  const tbody = tbodyOf('log-lines');
  clear(tbody);
  $('log-meta').textContent = `${lines.length >= LOG_LIMIT ? 'newest ' : ''}${fmtInt(lines.length)} line${lines.length === 1 ? '' : 's'}` +
    (state.sel ? ' in the selected range' : ' in the whole run');
  $('log-empty').hidden = lines.length > 0;
  for (const l of lines) {
    const tr = el('tr', 'log-row');
    tr.appendChild(el('td', 'time', fmtTime(l.arrived_ms)));
    tr.appendChild(el('td', 'time', isNum(l.ts_ms) ? fmtTime(l.ts_ms) : '–'));
    const kind = el('td', 'kind');
    if (l.ok) kind.appendChild(el('span', 'tag tag-unmatched', 'unmatched'));
    else {
      kind.appendChild(el('span', 'tag tag-rejected', 'rejected'));
      if (l.reason) kind.appendChild(el('span', 'reason', l.reason));
    }
    tr.appendChild(kind);
    const text = lineText(l);
    const lc = el('td', 'line mono', text);
    lc.title = l.raw ? String(l.raw) : text;
    tr.appendChild(lc);
    tbody.appendChild(tr);
  }
}
