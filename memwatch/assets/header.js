// @ts-check
// The header and its banners, from /api/summary: live or offline, the traced processes, the
// run's duration, requests and memory, non-HTTP traffic, the access log, whether query strings
// were recorded, and what was lost.

import { $, clear, el, renderCounts } from './dom.js';
import { countOf, fmtBytes, fmtBytesPair, fmtDuration, fmtInt, fmtRange, fmtTime, hasCounts, isNum } from './format.js';
import { runBounds, state } from './state.js';

/** Draws the last summary into the header. */
export function renderSummary() {
  const s = state.summary;
  if (!s) return;

  const badge = $('mode-badge');
  if (s.live) {
    badge.className = 'badge badge-live';
    badge.textContent = state.streaming ? 'live' : 'live · reconnecting';
    badge.title = 'Recording now: the page follows new data every second';
  } else {
    badge.className = 'badge badge-offline';
    badge.textContent = 'offline';
    badge.title = 'Viewing a finished recording';
  }

  const procs = $('processes');
  clear(procs);
  const list = Array.isArray(s.processes) ? s.processes : [];
  const shown = list.slice(0, 4);
  for (const p of shown) {
    const chip = el('span', 'proc');
    chip.appendChild(el('span', 'comm', p.comm || '?'));
    chip.appendChild(el('span', 'pid', p.pid));
    const exited = isNum(p.exited_ms) && p.exited_ms > 0;
    if (exited) chip.classList.add('exited');
    chip.title = `pid ${p.pid}, parent ${p.ppid}, ${p.origin || ''}${exited ? ', exited ' + fmtTime(p.exited_ms) : ''}`;
    procs.appendChild(chip);
  }
  if (list.length > shown.length) {
    const more = el('span', 'proc more', `+${list.length - shown.length}`);
    more.title = list.slice(shown.length).map((p) => `${p.comm} ${p.pid}`).join(', ');
    procs.appendChild(more);
  }

  const bounds = runBounds();
  $('duration').textContent = fmtDuration(s.duration_s);
  $('duration').title = bounds ? fmtRange(bounds.from, bounds.to) : '';
  $('request-count').textContent = isNum(s.requests) ? String(s.requests) : '0';
  const approx = $('approx-count');
  if (isNum(s.approximate_requests) && s.approximate_requests > 0) {
    approx.textContent = ` ≈${fmtInt(s.approximate_requests)}`;
    approx.title = `${fmtInt(s.approximate_requests)} requests have approximately attributed memory`;
  } else {
    approx.textContent = '';
    approx.title = '';
  }

  const m = s.memory || {};
  $('rss-summary').textContent = isNum(m.rss_end_bytes) ? fmtBytesPair(m.rss_start_bytes, m.rss_end_bytes) : '–';
  $('rss-summary').title = `resident set size, summed over traced processes; peak ${fmtBytes(m.rss_peak_bytes)}`;
  $('vm-summary').textContent = isNum(m.vm_end_bytes) ? fmtBytesPair(m.vm_start_bytes, m.vm_end_bytes) : '–';
  $('vm-summary').title = `virtual size (VmSize), summed over traced processes; peak ${fmtBytes(m.vm_peak_bytes)}`;

  renderCounts($('non-http'), s.non_http);
  $('non-http-stat').hidden = !hasCounts(s.non_http);

  renderAccessLog(s.access_log);

  // A recording made without --redact-query holds query strings: say so where it is shown.
  $('query-badge').hidden = s.redact_query !== false;

  renderLosses(s);
}

/**
 * The access log's counts, with its mode, format and rejections in the tooltip.
 * @param {import('./api.js').AccessLogSummary | null} al
 */
function renderAccessLog(al) {
  const alStat = $('access-log-stat');
  if (!al || typeof al !== 'object') {
    alStat.hidden = true;
    return;
  }
  const rejected = countOf(al.rejected);
  const unmatched = isNum(al.unmatched_lines) ? al.unmatched_lines : al.unmatched;
  $('access-log').textContent =
    `${fmtInt(al.lines)} lines · ${fmtInt(al.matched)} matched · ${fmtInt(unmatched)} unmatched · ${fmtInt(rejected)} rejected`;
  const parts = [];
  if (al.mode) parts.push(`mode: ${al.mode}`);
  if (Array.isArray(al.format) && al.format.length) parts.push(`format: ${al.format.join(', ')}`);
  else if (typeof al.format === 'string') parts.push(`format: ${al.format}`);
  if (isNum(al.unmatched_requests)) parts.push(`${fmtInt(al.unmatched_requests)} captured requests without a log line`);
  if (al.rejected && typeof al.rejected === 'object') {
    for (const [k, v] of Object.entries(al.rejected)) parts.push(`rejected ${k}: ${v}`);
  }
  $('access-log').title = parts.join('\n');
  alStat.hidden = false;
}

/**
 * The banner that says what was lost: kernel events, rows the writer shed, PIDs reused.
 * @param {import('./api.js').Summary} s
 */
function renderLosses(s) {
  const lost = s.dropped_events;
  const own = s.memwatch || {};
  const shed = isNum(own.writer_shed_rows) ? own.writer_shed_rows : 0;
  const reused = isNum(own.pids_reused) ? own.pids_reused : 0;
  const warn = $('drop-warning');
  const notes = [];
  if (isNum(lost) && lost > 0) {
    notes.push(`⚠ ${fmtInt(lost)} kernel event${lost === 1 ? ' was' : 's were'} lost (ring buffer full): ` +
      'request counts and attributed bytes below are lower bounds.');
  }
  if (shed > 0) {
    notes.push(`⚠ the recording writer fell behind and shed ${fmtInt(shed)} row${shed === 1 ? '' : 's'}.`);
  }
  if (isNum(s.command_stopped_ms)) {
    notes.push(`Routes' figures end at ${fmtTime(s.command_stopped_ms)}, when memwatch stopped the ` +
      'command it started: what its exit freed after that is no route\'s release.');
  }
  if (reused > 0) {
    notes.push(`${fmtInt(reused)} PID${reused === 1 ? ' was' : 's were'} given to a new process: ` +
      'their per-process figures cover every process that held them.');
  }
  if (notes.length) {
    warn.textContent = notes.join(' ');
    const l = s.lost || {};
    warn.title = `dropped events ${fmtInt(l.dropped_events)}, unpaired exits ${fmtInt(l.unpaired_exits)}, ` +
      `map full ${fmtInt(l.map_full)}, undecodable ${fmtInt(l.undecodable)}, rows shed ${fmtInt(shed)}`;
    warn.hidden = false;
  } else {
    warn.hidden = true;
  }
}
