// memwatch page: memory over time, requests per bucket, and which routes made memory grow.
//
// Everything the API returns came from the network or from a traced process and is treated as
// hostile: the DOM is built with createElement and textContent only, never from HTML strings.
//
// Test hook: `window.memwatch` (see the end of this file) exposes the uPlot charts,
// `valToPos(ms)` (x pixel of a time inside the chart's `.u-over` overlay), `select(from, to)`,
// `clearSelection()`, `idle()`, `requestLimit`, `highlightCount` and the page `state`
// (`state.stacks` and `state.routeStacks` hold the call-site trees the icicles draw).
'use strict';

(function () {
  const KiB = 1024;
  const MiB = 1024 * 1024;
  const GiB = 1024 * MiB;
  /** Rows fetched for the selected route's request list (and drawn on the chart). */
  const REQUEST_LIMIT = 500;
  const LOG_LIMIT = 200;
  /** Routes with a retained-memory line of their own (the API allows up to 20). */
  const RETAINED_TOP = 5;
  /** Without an `update` event for this long, a live page polls by itself. */
  const LIVE_FALLBACK_MS = 2500;
  const MIN_SELECT_PX = 3;
  const CHART_HEIGHT = 380;
  const LANE_HEIGHT = 84;
  const AXIS_LEFT = 76;
  const AXIS_RIGHT = 76;
  const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif';
  const AXIS_STROKE = '#5f6b7a';
  const GRID = { stroke: 'rgba(31, 41, 55, 0.07)', width: 1 };
  const TICKS = { stroke: 'rgba(31, 41, 55, 0.18)', width: 1, size: 4 };

  const COLOR = {
    rss: '#5b3cc4',
    rssFill: 'rgba(91, 60, 196, 0.09)',
    vm: '#7b8794',
    s2xx: '#2f9e44',
    s3xx: '#1c7ed6',
    s4xx: '#f08c00',
    s5xx: '#e03131',
    other: '#adb5bd',
    mem: { mmap: '#d9480f', mremap: '#ae3ec9', brk: '#0b7285', munmap: '#1971c2' },
    hl: 'rgba(214, 51, 108, 0.20)',
    hlEdge: 'rgba(214, 51, 108, 0.85)',
    hlHover: 'rgba(214, 51, 108, 0.45)',
    /** Retained memory by route: one colour per route, most retained first. */
    retained: ['#d6336c', '#0ca678', '#f08c00', '#1c7ed6', '#ae3ec9', '#e8590c', '#2b8a3e', '#364fc7', '#c2255c', '#087f5b'],
    retainedOther: '#868e96',
    retainedOutside: '#495057',
  };
  const CLASSES = [
    { key: 's2xx', label: '2xx' },
    { key: 's3xx', label: '3xx' },
    { key: 's4xx', label: '4xx' },
    { key: 's5xx', label: '5xx' },
    { key: 'other', label: 'other' },
  ];

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);

  /** An element with optional class and text; children appended as given. */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  function fmtBytes(b) {
    if (!isNum(b)) return '–';
    const sign = b < 0 ? '−' : '';
    const a = Math.abs(b);
    if (a < KiB) return sign + a + ' B';
    const units = [['KiB', KiB], ['MiB', MiB], ['GiB', GiB], ['TiB', GiB * 1024]];
    let u = units[0];
    for (const x of units) if (a >= x[1]) u = x;
    const v = a / u[1];
    const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return sign + trimZeros(v.toFixed(digits)) + ' ' + u[0];
  }

  /** "37.8 → 88.8 MiB" (one unit when both share it). */
  function fmtBytesPair(a, b) {
    const x = fmtBytes(a);
    const y = fmtBytes(b);
    const ux = x.split(' ')[1];
    return ux && ux === y.split(' ')[1] ? `${x.split(' ')[0]} → ${y}` : `${x} → ${y}`;
  }

  function trimZeros(s) {
    return s.indexOf('.') >= 0 ? s.replace(/\.?0+$/, '') : s;
  }

  /** Axis label for a value in MiB, with at least `extra` more decimals than by default. */
  function fmtMiBAxis(v, extra) {
    if (!isNum(v)) return '';
    const more = extra || 0;
    if (Math.abs(v) >= 1024) return trimZeros((v / 1024).toFixed(2 + more)) + ' GiB';
    if (Math.abs(v) >= 1) return trimZeros(v.toFixed(1 + more)) + ' MiB';
    return trimZeros((v * 1024).toFixed(more)) + ' KiB';
  }

  /**
   * Labels for memory ticks at `splits` (MiB): as few decimals as keep every two ticks of
   * different values apart, so that an axis over a range of a few KiB never reads
   * "21.2, 21.2, 21.3". Pure: the browser test calls it through `window.memwatch`.
   */
  function memTickLabels(splits) {
    let labels = splits.map((v) => fmtMiBAxis(v));
    // Six more decimals at most: past that, ticks would be less than a byte apart.
    for (let extra = 1; extra <= 6 && !ticksDistinct(splits, labels); extra++) {
      labels = splits.map((v) => fmtMiBAxis(v, extra));
    }
    return labels;
  }

  /** Whether ticks of different values at `splits` have different `labels`. */
  function ticksDistinct(splits, labels) {
    const seen = new Map();
    for (let i = 0; i < splits.length; i++) {
      if (!isNum(splits[i])) continue;
      const prev = seen.get(labels[i]);
      if (prev !== undefined && prev !== splits[i]) return false;
      seen.set(labels[i], splits[i]);
    }
    return true;
  }

  function fmtInt(n) {
    return isNum(n) ? Math.round(n).toLocaleString('en-US') : '–';
  }

  function fmtMs(ms) {
    if (!isNum(ms)) return '–';
    if (ms < 1) return trimZeros(ms.toFixed(2)) + ' ms';
    if (ms < 100) return trimZeros(ms.toFixed(1)) + ' ms';
    if (ms < 10000) return Math.round(ms) + ' ms';
    return trimZeros((ms / 1000).toFixed(1)) + ' s';
  }

  function fmtDuration(s) {
    if (!isNum(s)) return '–';
    if (s < 60) return trimZeros(s.toFixed(s < 10 ? 2 : 1)) + ' s';
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = Math.floor(s % 60);
    return h > 0 ? `${h} h ${m} min` : `${m} min ${sec} s`;
  }

  const pad = (n, w) => String(n).padStart(w || 2, '0');

  /** Local wall-clock time with milliseconds. */
  function fmtTime(ms) {
    if (!isNum(ms)) return '–';
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function fmtDate(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function fmtRange(from, to) {
    const sameDay = fmtDate(from) === fmtDate(to);
    const a = fmtDate(from) + ' ' + fmtTime(from);
    const b = sameDay ? fmtTime(to) : fmtDate(to) + ' ' + fmtTime(to);
    return `${a} – ${b} (${fmtDuration((to - from) / 1000)})`;
  }

  function statusClass(code) {
    const c = Number(code);
    if (!Number.isFinite(c) || c < 200 || c >= 600) return 'other';
    return 's' + Math.floor(c / 100) + 'xx';
  }

  // ---------------------------------------------------------------- API

  function parseToken() {
    const h = location.hash.replace(/^#/, '');
    if (!h) return '';
    return new URLSearchParams(h).get('token') || '';
  }
  const token = parseToken();

  function apiUrl(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    if (token) q.set('token', token);
    const s = q.toString();
    return path + (s ? '?' + s : '');
  }

  let pending = 0;
  let idleWaiters = [];
  function settle() {
    if (pending === 0) {
      const w = idleWaiters;
      idleWaiters = [];
      w.forEach((f) => f());
    }
  }

  async function api(path, params) {
    pending++;
    try {
      let res;
      try {
        res = await fetch(apiUrl(path, params), { cache: 'no-store', headers: { Accept: 'application/json' } });
      } catch (e) {
        throw new Error(`the memwatch server did not answer (${e && e.message ? e.message : e})`);
      }
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      if (!res.ok) {
        throw new Error(body && typeof body.error === 'string' ? body.error : `HTTP ${res.status}`);
      }
      if (body === null || typeof body !== 'object') throw new Error('the answer was not JSON');
      clearError(path);
      return body;
    } finally {
      pending--;
      // Let the caller render before idle() resolves.
      setTimeout(settle, 0);
    }
  }

  // ---------------------------------------------------------------- error bar

  const errors = new Map();
  function showError(key, msg) {
    errors.set(key, msg);
    renderErrors();
  }
  function clearError(key) {
    if (errors.delete(key)) renderErrors();
  }
  function renderErrors() {
    const bar = $('error-bar');
    if (errors.size === 0) {
      bar.hidden = true;
      return;
    }
    // One line per distinct message, naming every endpoint that answered it.
    const byMsg = new Map();
    for (const [key, msg] of errors) {
      if (!byMsg.has(msg)) byMsg.set(msg, []);
      byMsg.get(msg).push(key);
    }
    const text = $('error-text');
    clear(text);
    for (const [msg, keys] of byMsg) {
      const line = el('span', 'error-line');
      line.appendChild(el('span', 'error-src', keys.join(', ')));
      line.appendChild(document.createTextNode(': ' + msg));
      text.appendChild(line);
    }
    bar.hidden = false;
  }

  // ---------------------------------------------------------------- state

  const state = {
    summary: null,
    timeline: null,
    /** Selected range {from, to} in epoch ms, or null for the whole run. */
    sel: null,
    /** Zoomed x range {from, to}, or null to show the whole run. */
    zoom: null,
    /** Live mode with a selection: the x range stays where it was. */
    frozenX: null,
    /** Clicked route {method, route}, or null. */
    route: null,
    endpoints: null,
    sort: { key: 'kept_per_request_bytes', dir: -1 },
    requests: null,
    logLines: null,
    /** The last /api/stacks answer for the range (all routes), and for the clicked route. */
    stacks: null,
    routeStacks: null,
    hoverReq: null,
    /** Whether the chart draws retained memory by route (the "Retained by route" toggle). */
    retainedOn: false,
    /** The last /api/retained answer while the toggle is on. */
    retained: null,
    streaming: false,
    lastUpdate: 0,
  };
  const seq = { summary: 0, timeline: 0, retained: 0, endpoints: 0, requests: 0, logLines: 0, stacks: 0, routeStacks: 0 };

  let chart = null;
  /** Keys of the retained-memory series the chart has after its RSS and VmSize series. */
  let retainedKeys = [];
  let lane = null;
  let laneRaw = null;
  let highlightCount = 0;

  const rangeParams = () => (state.sel ? { from: state.sel.from, to: state.sel.to } : {});

  function runBounds() {
    const s = state.summary;
    if (!s) return null;
    const from = s.started_ms;
    const to = isNum(s.ended_ms) ? s.ended_ms : isNum(s.latest_ms) ? s.latest_ms : Date.now();
    return isNum(from) ? { from, to: Math.max(to, from + 1) } : null;
  }

  function xRange() {
    if (state.zoom) return state.zoom;
    if (state.frozenX) return state.frozenX;
    return runBounds();
  }

  // ---------------------------------------------------------------- header

  function renderSummary() {
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

    $('duration').textContent = fmtDuration(s.duration_s);
    $('duration').title = runBounds() ? fmtRange(runBounds().from, runBounds().to) : '';
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

    const al = s.access_log;
    const alStat = $('access-log-stat');
    if (al && typeof al === 'object') {
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
    } else {
      alStat.hidden = true;
    }

    // A recording made without --redact-query holds query strings: say so where it is shown.
    $('query-badge').hidden = s.redact_query !== false;

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

  function countOf(v) {
    if (isNum(v)) return v;
    if (v && typeof v === 'object') return Object.values(v).reduce((a, x) => a + (isNum(x) ? x : 0), 0);
    return 0;
  }

  function hasCounts(obj) {
    return !!obj && typeof obj === 'object' && Object.values(obj).some((v) => isNum(v) && v > 0);
  }

  /** Fills `node` with "kind count" chips from a {kind: count} object. */
  function renderCounts(node, obj) {
    clear(node);
    if (!hasCounts(obj)) return;
    for (const [k, v] of Object.entries(obj)) {
      if (!isNum(v) || v <= 0) continue;
      const c = el('span', 'count-chip');
      c.appendChild(el('span', 'k', k));
      c.appendChild(el('span', 'v', fmtInt(v)));
      node.appendChild(c);
    }
  }

  // ---------------------------------------------------------------- charts

  function plotWidth() {
    const w = $('chart').clientWidth;
    return Math.max(320, w || 1000);
  }

  /**
   * About one request bucket (and one min/max pair of memory samples) per two pixels, and never
   * buckets shorter than a millisecond (the API's times are whole milliseconds).
   */
  function timelinePoints(range) {
    let n = Math.round(plotWidth() - AXIS_LEFT - AXIS_RIGHT);
    if (range) n = Math.min(n, 2 * Math.max(1, Math.floor(range.to - range.from)));
    return Math.max(2, Math.min(10000, n));
  }

  function baseCursor() {
    return {
      sync: { key: 'memwatch', setSeries: false },
      drag: { x: true, y: false, setScale: false },
      y: false,
      points: { size: 7, width: 2 },
      bind: {
        dblclick: () => () => {
          resetZoom();
          return null;
        },
      },
    };
  }

  /** 24-hour local time tick labels, precise enough for the tick spacing; the date on day changes. */
  function timeTicks(u, splits, axisIdx, space, incr) {
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

  function xAxis(showValues) {
    return {
      stroke: AXIS_STROKE,
      font: FONT,
      grid: GRID,
      ticks: TICKS,
      size: showValues ? 30 : 4,
      values: showValues ? timeTicks : (u, splits) => splits.map(() => ''),
      space: 90,
    };
  }

  function yAxis(scale, side, label, stroke, grid) {
    return {
      scale,
      side,
      label,
      labelSize: 16,
      labelFont: '600 11px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif',
      stroke,
      font: FONT,
      grid: grid ? GRID : { show: false },
      ticks: TICKS,
      size: side === 3 ? AXIS_LEFT : AXIS_RIGHT,
      values: (u, splits) => memTickLabels(splits),
    };
  }

  function yRangePadded(u, min, max) {
    if (!isNum(min) || !isNum(max)) return [0, 1];
    if (min === max) {
      const d = Math.max(Math.abs(max) * 0.05, 1);
      return [Math.max(0, min - d), max + d];
    }
    const pad = (max - min) * 0.08;
    return [Math.max(0, min - pad), max + pad];
  }

  function makeChart() {
    const opts = {
      width: plotWidth(),
      height: CHART_HEIGHT,
      ms: 1,
      pxAlign: 1,
      cursor: baseCursor(),
      select: { show: true },
      legend: { live: true, mount: (u, table) => $('legend').appendChild(table) },
      focus: { alpha: 0.35 },
      scales: {
        x: { time: true },
        rss: { range: yRangePadded },
        vm: { range: yRangePadded },
      },
      series: [
        { label: 'Time', value: (u, v) => (v == null ? '–' : fmtTime(v)) },
        {
          label: 'Resident (RSS)',
          scale: 'rss',
          stroke: COLOR.rss,
          fill: COLOR.rssFill,
          width: 2,
          spanGaps: true,
          points: { show: false },
          value: (u, v) => (v == null ? '–' : fmtBytes(v * MiB)),
        },
        {
          label: 'Virtual (VmSize)',
          scale: 'vm',
          stroke: COLOR.vm,
          width: 1.5,
          dash: [6, 4],
          spanGaps: true,
          points: { show: false },
          value: (u, v) => (v == null ? '–' : fmtBytes(v * MiB)),
        },
      ],
      axes: [
        xAxis(true),
        yAxis('rss', 3, 'Resident (RSS)', COLOR.rss, true),
        yAxis('vm', 1, 'Virtual (VmSize)', COLOR.vm, false),
      ],
      hooks: {
        drawClear: [drawHighlights],
        draw: [drawMemEvents],
        setSelect: [onSelect],
        setCursor: [onCursor],
      },
    };
    return new uPlot(opts, [[], [], []], $('chart'));
  }

  function makeLane() {
    const bars = uPlot.paths.bars({ size: [0.92, Infinity, 1], gap: 0 });
    const series = [{ label: 'Bucket', value: (u, v) => (v == null ? '–' : fmtTime(v)) }];
    CLASSES.forEach((c) => {
      series.push({
        label: c.label,
        stroke: COLOR[c.key],
        fill: COLOR[c.key],
        width: 0,
        paths: bars,
        points: { show: false },
        value: (u, v, si, idx) => (idx == null || !laneRaw ? '–' : fmtInt(laneRaw[c.key][idx])),
      });
    });
    const opts = {
      width: plotWidth(),
      height: LANE_HEIGHT,
      ms: 1,
      cursor: baseCursor(),
      select: { show: true },
      legend: { show: false },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max || 1) * 1.1] } },
      series,
      axes: [
        xAxis(false),
        Object.assign(yAxis('y', 3, 'Requests', AXIS_STROKE, true), {
          space: 22,
          values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? fmtInt(v) : '')),
        }),
        Object.assign(yAxis('y', 1, '', 'transparent', false), { ticks: { show: false }, values: (u, s) => s.map(() => '') }),
      ],
      hooks: {
        setSelect: [onSelect],
        setCursor: [onCursor],
      },
    };
    return new uPlot(opts, [[], [], [], [], [], []], $('lane'));
  }

  function toMiB(arr) {
    return arr.map((v) => (isNum(v) ? v / MiB : null));
  }

  function seriesOf(obj) {
    const t = obj && Array.isArray(obj.t) ? obj.t : [];
    const v = obj && Array.isArray(obj.v) ? obj.v : [];
    const n = Math.min(t.length, v.length);
    return [t.slice(0, n), toMiB(v.slice(0, n))];
  }

  function renderTimeline() {
    const tl = state.timeline;
    if (!tl) return;
    if (!chart) chart = trackDrags(makeChart());
    if (!lane) lane = trackDrags(makeLane());

    const rss = seriesOf(tl.rss);
    const vm = seriesOf(tl.vm);
    const retained = retainedSeries();
    syncRetainedSeries(retained);
    const tables = [rss, vm];
    if (retained.length) tables.push([retained[0].t, ...retained.map((r) => toMiB(r.v))]);
    const joined = uPlot.join(tables);
    // Retained memory is cumulative and holds until its next bucket: carry each value to the
    // memory samples in between, so that the legend reads it anywhere on the chart.
    for (let i = 3; i < joined.length; i++) {
      let prev = null;
      joined[i] = Array.from(joined[i], (v) => (v == null ? prev : (prev = v)));
    }
    chart.setData(joined, false);
    $('chart-empty').hidden = rss[0].length + vm[0].length > 0;

    // Requests lane: bars at the middle of each bucket, drawn as a stack whose top is 2xx and
    // whose bottom holds errors, so that rare 5xx stay visible next to thousands of 2xx.
    const r = tl.requests || {};
    const t = Array.isArray(r.t) ? r.t : [];
    const w = isNum(r.width_ms) ? r.width_ms : 0;
    laneRaw = {};
    for (const c of CLASSES) laneRaw[c.key] = t.map((_, i) => (Array.isArray(r[c.key]) && isNum(r[c.key][i]) ? r[c.key][i] : 0));
    const xs = t.map((v) => v + w / 2);
    const stacks = CLASSES.map((c, ci) => t.map((_, i) => {
      let sum = 0;
      for (let k = ci; k < CLASSES.length; k++) sum += laneRaw[CLASSES[k].key][i];
      return sum;
    }));
    lane.setData([xs, ...stacks], false);
    applyXRange();
    showLatestLegend();
  }

  /**
   * The retained-memory series to draw, from the last /api/retained answer: the top routes,
   * then the other routes and memory made outside requests when they hold anything. Empty
   * while the toggle is off. Every entry has the answer's `t` and a same-length `v`.
   */
  function retainedSeries() {
    const r = state.retained;
    if (!state.retainedOn || !r || !Array.isArray(r.t) || r.t.length === 0) return [];
    const t = r.t;
    const fit = (v) => (Array.isArray(v) && v.length === t.length && v.every(isNum) ? v : null);
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
    const some = (v) => v && v.some((x) => x !== 0);
    const other = fit(r.other);
    if (some(other)) {
      out.push({ key: 'other', text: 'other routes', title: 'Retained by every other route, summed', stroke: COLOR.retainedOther, dash: [5, 3], t, v: other });
    }
    const outside = fit(r.outside);
    if (some(outside)) {
      out.push({ key: 'outside', text: 'outside requests', title: 'Memory made resident while no request was served (startup, background threads, collectors), less what was released of it', stroke: COLOR.retainedOutside, dash: [2, 3], t, v: outside });
    }
    return out;
  }

  /** Gives the chart one series per entry of `list` after RSS and VmSize, when they differ. */
  function syncRetainedSeries(list) {
    const keys = list.map((x) => x.key);
    if (keys.length === retainedKeys.length && keys.every((k, i) => k === retainedKeys[i])) return;
    for (let i = chart.series.length - 1; i >= 3; i--) chart.delSeries(i);
    const stepped = uPlot.paths.stepped({ align: 1 });
    for (const x of list) {
      // The legend shows the name as text, never as markup.
      const label = el('span', x.route ? 'series-route' : 'series-retained', x.text);
      label.title = x.title;
      const opts = {
        label,
        scale: 'rss',
        stroke: x.stroke,
        width: 1.5,
        paths: stepped,
        spanGaps: true,
        points: { show: false },
        value: (u, v) => (v == null ? '–' : fmtBytes(v * MiB)),
      };
      if (x.dash) opts.dash = x.dash;
      chart.addSeries(opts);
    }
    retainedKeys = keys;
  }

  /** Says why the toggle draws nothing, if it does. */
  function renderRetainedNote() {
    const note = $('retained-note');
    const r = state.retained;
    if (state.retainedOn && r && Array.isArray(r.t) && r.t.length === 0) {
      note.textContent = 'No retained-memory figures in this recording (made before schema 3, or with --no-ebpf)';
      note.hidden = false;
    } else if (state.retainedOn && r && retainedSeries().length === 0) {
      note.textContent = 'No route retains memory in this range';
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  function setRetained(on) {
    state.retainedOn = on;
    $('retained-toggle').setAttribute('aria-pressed', on ? 'true' : 'false');
    if (on) {
      loadRetained();
    } else {
      seq.retained++;
      state.retained = null;
      renderRetainedNote();
      renderTimeline();
    }
  }

  function applyXRange() {
    const r = xRange();
    if (!r || !chart) return;
    chart.setScale('x', { min: r.from, max: r.to });
    if (lane) lane.setScale('x', { min: r.from, max: r.to });
    syncSelectBoxes();
    updateButtons();
  }

  function syncSelectBoxes() {
    for (const u of [chart, lane]) {
      if (!u) continue;
      const h = u.over.clientHeight;
      if (state.sel) {
        const w = u.over.clientWidth;
        const a = Math.max(0, Math.min(w, u.valToPos(state.sel.from, 'x')));
        const b = Math.max(0, Math.min(w, u.valToPos(state.sel.to, 'x')));
        u.setSelect({ left: a, width: Math.max(0, b - a), top: 0, height: h }, false);
      } else {
        u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
      }
    }
  }

  /** The chart the user pressed the mouse on: the other one only mirrors its selection. */
  let dragSource = null;
  function trackDrags(u) {
    u.over.addEventListener('mousedown', () => {
      dragSource = u;
    });
    return u;
  }

  function onSelect(u) {
    if (dragSource !== null && u !== dragSource) return;
    const { left, width } = u.select;
    if (width < MIN_SELECT_PX) {
      // A click, not a drag: keep the current selection.
      syncSelectBoxes();
      return;
    }
    const from = Math.floor(u.posToVal(left, 'x'));
    const to = Math.ceil(u.posToVal(left + width, 'x'));
    if (state.sel && state.sel.from === from && state.sel.to === to) return; // the synced twin
    setSelection({ from, to });
  }

  /** With the cursor off the chart, the legend shows the latest values. */
  function showLatestLegend() {
    if (!chart || chart.cursor.idx != null) return;
    const d = chart.data;
    const last = (arr) => {
      for (let i = arr.length - 1; i >= 0; i--) if (arr[i] != null) return i;
      return null;
    };
    if (!d || !d[0] || d[0].length === 0) return;
    chart.setLegend({ idxs: d.map((arr, i) => (i === 0 ? d[0].length - 1 : last(arr))) }, false);
  }

  /** Both charts share one cursor: describe the bucket and the mmap/brk marker under it. */
  function onCursor() {
    if (!chart) return;
    showLatestLegend();
    const info = $('hover-info');
    const left = chart.cursor.left;
    const parts = [];
    // Requests in the bucket under the cursor (both charts share the cursor).
    const li = lane ? lane.cursor.idx : null;
    if (laneRaw && isNum(li) && lane.data[0][li] !== undefined) {
      const counts = CLASSES.map((c) => [c.label, laneRaw[c.key][li]]).filter(([, n]) => n > 0);
      const total = counts.reduce((a, [, n]) => a + n, 0);
      const w = state.timeline && state.timeline.requests ? state.timeline.requests.width_ms : 0;
      parts.push((total ? `${fmtInt(total)} request${total === 1 ? '' : 's'}` : 'no requests') + ` in ${fmtMs(w)}` +
        (counts.length ? ' (' + counts.map(([l, n]) => `${l} ${fmtInt(n)}`).join(', ') + ')' : ''));
    }
    // Memory events drawn within a few pixels of the cursor, largest first.
    const evs = state.timeline && Array.isArray(state.timeline.mem_events) ? state.timeline.mem_events : [];
    const near = [];
    if (isNum(left) && left >= 0) {
      for (const e of evs) {
        if (isNum(e.t) && Math.abs(chart.valToPos(e.t, 'x') - left) <= 5) near.push(e);
      }
    }
    if (near.length) {
      near.sort((a, b) => Math.abs(b.bytes) - Math.abs(a.bytes));
      const shown = near.slice(0, 3).map((e) => `${e.op} ${e.bytes >= 0 ? '+' : ''}${fmtBytes(e.bytes)} (pid ${e.pid}, ${fmtTime(e.t)})`);
      if (near.length > 3) shown.push(`${near.length - 3} more`);
      parts.unshift(shown.join(', '));
    }
    info.classList.toggle('mem', near.length > 0);
    info.textContent = parts.join(' · ');
  }

  /** Requests of the clicked route, as bands behind the memory lines. */
  function drawHighlights(u) {
    highlightCount = 0;
    const reqs = state.route && state.requests && Array.isArray(state.requests.requests) ? state.requests.requests : [];
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const dpr = window.devicePixelRatio || 1;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const minW = 2 * dpr;
    const band = (r, fill) => {
      if (!isNum(r.start_ms)) return false;
      const end = isNum(r.end_ms) ? r.end_ms : r.start_ms;
      let a = u.valToPos(r.start_ms, 'x', true);
      let b = u.valToPos(end, 'x', true);
      if (b < left || a > left + width) return false;
      if (b - a < minW) {
        const m = (a + b) / 2;
        a = m - minW / 2;
        b = m + minW / 2;
      }
      ctx.fillStyle = fill;
      ctx.fillRect(a, top, b - a, height);
      return true;
    };
    for (const r of reqs) {
      if (band(r, COLOR.hl)) {
        highlightCount++;
        const m = (u.valToPos(r.start_ms, 'x', true) + u.valToPos(isNum(r.end_ms) ? r.end_ms : r.start_ms, 'x', true)) / 2;
        ctx.fillStyle = COLOR.hlEdge;
        ctx.fillRect(m - dpr, top + height - 6 * dpr, 2 * dpr, 6 * dpr);
      }
    }
    if (state.hoverReq) band(state.hoverReq, COLOR.hlHover);
    ctx.restore();
  }

  /** Large mmap / mremap / brk changes as small triangles on the top edge. */
  function drawMemEvents(u) {
    const evs = state.timeline && Array.isArray(state.timeline.mem_events) ? state.timeline.mem_events : [];
    if (!evs.length) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const dpr = window.devicePixelRatio || 1;
    const s = 5 * dpr;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left - s, top - s, width + 2 * s, height + s);
    ctx.clip();
    for (const e of evs) {
      if (!isNum(e.t)) continue;
      const x = u.valToPos(e.t, 'x', true);
      if (x < left || x > left + width) continue;
      const c = COLOR.mem[e.op] || COLOR.mem.mmap;
      ctx.strokeStyle = c;
      ctx.globalAlpha = 0.25;
      ctx.lineWidth = dpr;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.beginPath();
      ctx.moveTo(x - s, top);
      ctx.lineTo(x + s, top);
      ctx.lineTo(x, top + s * 1.6);
      ctx.closePath();
      if (isNum(e.bytes) && e.bytes < 0) {
        // Memory given back (munmap, shrinking brk or mremap): hollow.
        ctx.fillStyle = '#ffffff';
        ctx.fill();
        ctx.strokeStyle = c;
        ctx.lineWidth = 1.5 * dpr;
        ctx.stroke();
      } else {
        ctx.fillStyle = c;
        ctx.fill();
      }
    }
    ctx.restore();
  }

  function resizeCharts() {
    const w = plotWidth();
    if (chart && chart.width !== w) chart.setSize({ width: w, height: CHART_HEIGHT });
    if (lane && lane.width !== w) lane.setSize({ width: w, height: LANE_HEIGHT });
    syncSelectBoxes();
  }

  // ---------------------------------------------------------------- selection and zoom

  function setSelection(sel) {
    state.sel = sel;
    if (sel && state.summary && state.summary.live && !state.zoom) {
      state.frozenX = chart ? { from: chart.scales.x.min, to: chart.scales.x.max } : runBounds();
    }
    if (!sel) state.frozenX = null;
    renderSelectionLabel();
    syncSelectBoxes();
    updateButtons();
    loadEndpoints();
    loadStacks();
    loadLogLines();
    if (state.route) {
      loadRequests();
      loadRouteStacks();
    }
    if (!sel && !state.zoom) applyXRange();
  }

  function renderSelectionLabel() {
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

  function zoomTo(range) {
    state.zoom = range;
    state.frozenX = null;
    loadChart();
    applyXRange();
  }

  function resetZoom() {
    if (!state.zoom) return;
    state.zoom = null;
    if (state.sel && state.summary && state.summary.live) state.frozenX = runBounds();
    loadChart();
    applyXRange();
  }

  function updateButtons() {
    $('zoom-selection').disabled = !state.sel;
    $('zoom-reset').disabled = !state.zoom;
    $('clear-selection').disabled = !state.sel;
  }

  // ---------------------------------------------------------------- routes table

  function errorShare(e) {
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
    const v = e[key];
    return typeof v === 'string' ? v.toLowerCase() : isNum(v) ? v : -Infinity;
  }

  function judged(e) {
    return isNum(e.requests) && e.requests >= 5;
  }

  function sortedEndpoints() {
    const list = state.endpoints && Array.isArray(state.endpoints.endpoints) ? state.endpoints.endpoints.slice() : [];
    const { key, dir } = state.sort;
    list.sort((a, b) => {
      // By what is kept, a route with too few requests to judge (fewer than 5) ranks after
      // every other, as in the report, whichever way the column is sorted.
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

  function statusCell(e) {
    const td = el('td', 'status');
    const wrap = el('span', 'status-wrap');
    td.appendChild(wrap);
    const st = e.statuses && typeof e.statuses === 'object' ? e.statuses : {};
    const entries = Object.entries(st).filter(([, v]) => isNum(v) && v > 0).sort((a, b) => b[1] - a[1]);
    const total = entries.reduce((a, [, v]) => a + v, 0);
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

  function numCell(text, cls, title) {
    const td = el('td', 'num' + (cls ? ' ' + cls : ''), text);
    if (title) td.title = title;
    return td;
  }

  /** The regression's estimate beside the origin figure, with its interval and any disagreement. */
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

  function disagreementOf(e) {
    const ret = state.endpoints && state.endpoints.retained;
    const reg = ret && typeof ret === 'object' ? ret.regression : null;
    const list = reg && Array.isArray(reg.disagreements) ? reg.disagreements : [];
    return list.find((d) => d && d.route === e.route && d.method === e.method) || null;
  }

  function renderRoutes() {
    const tbody = $('routes').tBodies[0];
    clear(tbody);
    const list = sortedEndpoints();
    $('routes-empty').hidden = list.length > 0 || !state.endpoints;
    for (const e of list) {
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
      tr.appendChild(kept);
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
      tbody.appendChild(tr);
    }
    renderSortIndicators();

    const extras = $('range-extras');
    clear(extras);
    const ep = state.endpoints;
    if (ep) {
      const r = ep.retained;
      if (r && typeof r === 'object') {
        // How the range's figures reconcile with the resident set: nothing lost silently.
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
        extras.appendChild(g);
        const heap = r.heap;
        if (heap && typeof heap === 'object') {
          // Whether heap reuse was followed: without it, a route that reuses another's freed
          // heap can swap places with it in the ranking. Said, not hidden.
          const h = el('span', 'extra');
          h.appendChild(el('span', 'extra-label', 'Heap'));
          const pct = (v) => (isNum(v) ? `${(v * 100).toFixed(1)}%` : '?');
          const sampling = heap.sampling && typeof heap.sampling === 'object' ? heap.sampling : null;
          h.appendChild(el('span', heap.followed && !sampling ? 'count-chip' : 'count-chip warn',
            heap.followed
              ? `followed: ${fmtInt(heap.blocks)} blocks changed hands` +
                (heap.processes_not_followed > 0 ? `, ${fmtInt(heap.processes_not_followed)} processes not followed` : '') +
                (isNum(heap.cost_share) ? `; probes cost ${pct(heap.cost_share)} of a core (budget ${pct(heap.budget_share)})` : '') +
                (sampling
                  ? `; SAMPLED: on ${pct(heap.on_fraction)} of the time, ` +
                    `${fmtInt(sampling.requests_followed)} of ${fmtInt(sampling.requests_followed + sampling.requests_sampled_out)} requests followed`
                  : '')
              : 'not followed (recorded with --no-heap)'));
          if (typeof heap.note === 'string') h.title = heap.note;
          extras.appendChild(h);
        }
      }
      const reg = r && typeof r === 'object' ? r.regression : null;
      if (reg && typeof reg === 'object') {
        // The second estimate's fit: how much of the resident set it explains, what it cannot
        // separate, and where it disagrees with the origin figures.
        const g = el('span', 'extra');
        g.appendChild(el('span', 'extra-label', 'Regression'));
        const disagreements = Array.isArray(reg.disagreements) ? reg.disagreements : [];
        const collinear = Array.isArray(reg.collinear) ? reg.collinear : [];
        const weak = !isNum(reg.explained) || reg.explained < 0.5;
        g.appendChild(el('span', disagreements.length || weak || collinear.length ? 'count-chip warn' : 'count-chip',
          `${fmtInt(reg.intervals)} intervals of ${fmtMs(reg.interval_ms)}, explains ` +
          `${isNum(reg.explained) ? (reg.explained * 100).toFixed(0) : '?'}% of the ${String(reg.signal)}` +
          (collinear.length ? `; cannot separate ${collinear.map(String).join(', ')}` : '') +
          (disagreements.length ? `; disagrees with the origin figure on ${fmtInt(disagreements.length)} route(s)` : '')));
        g.title = disagreements.map((d) => `${String(d.method)} ${String(d.route)}: origin ${fmtBytes(d.origin_bytes)}, ` +
          `regression ${fmtBytes(d.regression_bytes)}; trust the ${String(d.trust)}: ${String(d.why)}`).join('\n');
        extras.appendChild(g);
      }
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

  function renderSortIndicators() {
    for (const th of $('routes').tHead.querySelectorAll('th[data-sort]')) {
      const on = th.dataset.sort === state.sort.key;
      th.classList.toggle('sorted', on);
      th.setAttribute('aria-sort', on ? (state.sort.dir < 0 ? 'descending' : 'ascending') : 'none');
      th.dataset.dir = on ? (state.sort.dir < 0 ? '▼' : '▲') : '';
    }
  }

  function onSortClick(ev) {
    const th = ev.target.closest('th[data-sort]');
    if (!th) return;
    const key = th.dataset.sort;
    if (state.sort.key === key) state.sort.dir = -state.sort.dir;
    else state.sort = { key, dir: key === 'method' || key === 'route' ? 1 : -1 };
    renderRoutes();
  }

  function onRouteClick(ev) {
    const tr = ev.target.closest('tr.route-row');
    if (!tr) return;
    selectRoute(tr.dataset.method, tr.dataset.route);
  }

  function selectRoute(method, route) {
    if (state.route && state.route.method === method && state.route.route === route) {
      closeRoute();
      return;
    }
    state.route = { method, route };
    state.requests = null;
    for (const tr of $('routes').tBodies[0].rows) {
      tr.classList.toggle('selected', tr.dataset.method === method && tr.dataset.route === route);
    }
    $('requests-route').textContent = `${method} ${route}`;
    $('requests-meta').textContent = 'loading…';
    clear($('requests').tBodies[0]);
    $('requests-card').hidden = false;
    state.routeStacks = null;
    if (routeFlame) routeFlame.render(null);
    loadRequests();
    loadRouteStacks();
  }

  function closeRoute() {
    state.route = null;
    state.requests = null;
    state.routeStacks = null;
    seq.routeStacks++;
    state.hoverReq = null;
    $('requests-card').hidden = true;
    for (const tr of $('routes').tBodies[0].rows) tr.classList.remove('selected');
    if (chart) chart.redraw(false);
  }

  // ---------------------------------------------------------------- requests list

  function renderRequests() {
    const r = state.requests;
    const tbody = $('requests').tBodies[0];
    clear(tbody);
    if (!r) return;
    const list = Array.isArray(r.requests) ? r.requests : [];
    const total = isNum(r.total) ? r.total : list.length;
    $('requests-meta').textContent =
      (r.truncated || total > list.length ? `newest ${fmtInt(list.length)} of ${fmtInt(total)}` : `${fmtInt(total)} request${total === 1 ? '' : 's'}`) +
      (state.sel ? ' in the selected range' : ' in the whole run') + ' · highlighted on the chart';
    for (const q of list) {
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
        if (chart) chart.redraw(false);
      });
      tr.addEventListener('mouseleave', () => {
        if (state.hoverReq === q) state.hoverReq = null;
        if (chart) chart.redraw(false);
      });
      tbody.appendChild(tr);
    }
  }

  // ---------------------------------------------------------------- call sites (icicle)

  /** Height of one level of the icicle, in CSS pixels. */
  const FLAME_ROW = 18;
  /** Frames narrower than this many pixels are not drawn (their bytes are in their caller's). */
  const FLAME_MIN_PX = 0.5;

  /** A warm colour per function name, the same on every draw; grey for the placeholders. */
  function flameColor(node) {
    if (node.module === null || node.module === undefined) return '#ced4da';
    const name = String(node.name);
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
    const u = (h >>> 0) / 4294967296;
    return `hsl(${Math.round(6 + u * 44)}, ${Math.round(78 + ((h >>> 5) & 7) * 2)}%, ${Math.round(66 + ((h >>> 9) & 7) * 2)}%)`;
  }

  /** "GET /a", or what route "" stands for. */
  function routeName(r) {
    if (r.route === '') return 'outside requests';
    return `${r.method == null ? '' : r.method} ${r.route == null ? '' : r.route}`;
  }

  /**
   * An icicle of retained memory by call site drawn into `host` from /api/stacks answers: the
   * range (or route) on top, the outermost frames under it, each callee under its caller, widths
   * proportional to retained bytes. Hovering a frame shows its name, module, retained and grown
   * bytes; clicking it lists the routes that reached it. Names are text only (textContent).
   * `explain`: whether to say how to record call sites when the recording has none.
   */
  function makeFlame(host, explain) {
    const head = el('div', 'flame-head');
    head.appendChild(el('h3', null, 'Retained by call site'));
    const meta = el('span', 'meta');
    head.appendChild(meta);
    const note = el('p', 'flame-note');
    const wrap = el('div', 'flame-wrap');
    const graph = el('div', 'flame-graph');
    const tip = el('div', 'flame-tip');
    tip.hidden = true;
    wrap.appendChild(graph);
    wrap.appendChild(tip);
    const detail = el('div', 'flame-detail');
    detail.hidden = true;
    host.appendChild(head);
    host.appendChild(note);
    host.appendChild(wrap);
    host.appendChild(detail);
    host.hidden = true;

    /** Drawn frames, by their element's data-i. */
    let drawn = [];
    let total = 0;
    /** The clicked frame's path of names and modules, kept across redraws. */
    let selectedKey = null;
    /** What was drawn last: a live page refetches every second, mostly the same answer. */
    let drawnFrom = null;

    const keyOf = (path) => JSON.stringify(path.map((n) => [n.name, n.module]));

    function showNote(parts) {
      clear(note);
      for (const p of parts) note.appendChild(typeof p === 'string' ? document.createTextNode(p) : p);
      note.hidden = false;
    }

    function render(answer, label) {
      const from = answer ? JSON.stringify([answer, label, !!state.sel]) : null;
      if (from !== null && from === drawnFrom) return;
      drawnFrom = from;
      drawn = [];
      clear(graph);
      tip.hidden = true;
      note.hidden = true;
      meta.textContent = '';
      wrap.hidden = true;
      if (!answer) {
        // Another route, or loading: forget the clicked frame.
        selectedKey = null;
        detail.hidden = true;
        return;
      }
      if (!answer.recorded) {
        host.hidden = !explain;
        detail.hidden = true;
        showNote(['No call sites in this recording: record with ', el('code', null, 'memwatch record --stacks'),
          ' to see which code kept the memory.']);
        return;
      }
      host.hidden = false;
      total = isNum(answer.retained_bytes) ? answer.retained_bytes : 0;
      const grown = isNum(answer.grown_bytes) ? answer.grown_bytes : 0;
      meta.textContent = `${fmtBytes(total)} retained of ${fmtBytes(grown)} made resident` +
        (state.sel ? ' · selected range' : ' · whole run');
      if (total <= 0) {
        detail.hidden = true;
        showNote([grown > 0 ? `Nothing retained: the ${fmtBytes(grown)} made resident was released again.` : 'No memory was made resident.']);
        return;
      }
      if (isNum(answer.folded_nodes) && answer.folded_nodes > 0) {
        showNote([`${fmtInt(answer.folded_nodes)} smaller call site${answer.folded_nodes === 1 ? '' : 's'} not drawn, ` +
          `${fmtBytes(answer.folded_retained_bytes)} retained: counted in their callers.`]);
      }
      wrap.hidden = false;
      const root = {
        name: label,
        module: undefined,
        root: true,
        retained_bytes: total,
        grown_bytes: grown,
        routes: answer.routes,
        routes_folded: answer.routes_folded,
        children: answer.roots,
      };
      const width = graph.clientWidth || host.clientWidth || 1200;
      let depth = 0;
      let selected = null;
      const place = (node, level, x, path) => {
        const w = (isNum(node.retained_bytes) ? node.retained_bytes : 0) / total;
        if (w * width < FLAME_MIN_PX) return false;
        const i = drawn.length;
        const here = path.concat([node]);
        drawn.push({ node, path: here });
        const box = el('div', 'flame-node');
        box.dataset.i = String(i);
        box.dataset.depth = String(level);
        box.style.left = (x * 100).toFixed(4) + '%';
        box.style.width = (w * 100).toFixed(4) + '%';
        box.style.top = level * FLAME_ROW + 'px';
        box.style.background = node.root ? '#e4ddf8' : flameColor(node);
        box.tabIndex = 0;
        box.setAttribute('role', 'button');
        box.appendChild(el('span', 'flame-label', node.name));
        graph.appendChild(box);
        depth = Math.max(depth, level);
        if (selectedKey !== null && keyOf(here.slice(1)) === selectedKey) selected = i;
        let cx = x;
        let any = false;
        for (const c of Array.isArray(node.children) ? node.children : []) {
          if (place(c, level + 1, cx, here)) any = true;
          cx += (isNum(c.retained_bytes) ? c.retained_bytes : 0) / total;
        }
        if (!any) box.classList.add('leaf');
        return true;
      };
      place(root, 0, 0, []);
      graph.style.height = (depth + 1) * FLAME_ROW + 'px';
      if (selected !== null) select(selected);
      else {
        selectedKey = null;
        detail.hidden = true;
      }
    }

    function describe(d) {
      const n = d.node;
      clear(tip);
      tip.appendChild(el('div', 'flame-tip-name', n.name));
      if (!n.root) tip.appendChild(el('div', 'flame-tip-module', n.module == null ? 'no module' : n.module));
      const share = total > 0 ? ` (${trimZeros(((n.retained_bytes / total) * 100).toFixed(1))}%)` : '';
      tip.appendChild(el('div', 'flame-tip-bytes', `retained ${fmtBytes(n.retained_bytes)}${share} · grown ${fmtBytes(n.grown_bytes)}`));
    }

    function placeTip(x, y) {
      const w = wrap.clientWidth;
      tip.hidden = false;
      const tw = tip.offsetWidth;
      tip.style.left = Math.max(0, Math.min(w - tw, x + 12)) + 'px';
      tip.style.top = y + 16 + 'px';
    }

    function hit(target) {
      const box = target && target.closest ? target.closest('.flame-node') : null;
      return box && graph.contains(box) ? box : null;
    }

    function select(i) {
      const d = drawn[i];
      if (!d) return;
      selectedKey = keyOf(d.path.slice(1));
      for (const b of graph.querySelectorAll('.flame-node.selected')) b.classList.remove('selected');
      const box = graph.querySelector(`.flame-node[data-i="${i}"]`);
      if (box) box.classList.add('selected');
      const n = d.node;
      clear(detail);
      const h = el('div', 'flame-detail-head');
      h.appendChild(el('span', 'flame-detail-name', n.name));
      h.appendChild(el('span', 'meta', `retained ${fmtBytes(n.retained_bytes)} of ${fmtBytes(n.grown_bytes)} made resident, by`));
      const close = el('button', 'btn', 'Close');
      close.type = 'button';
      close.addEventListener('click', () => {
        selectedKey = null;
        detail.hidden = true;
        for (const b of graph.querySelectorAll('.flame-node.selected')) b.classList.remove('selected');
      });
      h.appendChild(el('span', 'spacer'));
      h.appendChild(close);
      detail.appendChild(h);
      const table = el('table', 'grid flame-routes');
      const thead = el('thead');
      const hr = el('tr');
      hr.appendChild(el('th', 'left', 'Route'));
      hr.appendChild(el('th', 'num', 'Retained'));
      hr.appendChild(el('th', 'num', 'Made resident'));
      thead.appendChild(hr);
      table.appendChild(thead);
      const tbody = el('tbody');
      const routes = Array.isArray(n.routes) ? n.routes : [];
      let listed = 0;
      for (const r of routes) {
        const tr = el('tr', 'flame-route');
        const name = el('td', r.route === '' ? 'route outside' : 'route', routeName(r));
        name.title = routeName(r);
        tr.appendChild(name);
        tr.appendChild(numCell(fmtBytes(r.retained_bytes), 'strong', `${fmtInt(r.retained_bytes)} bytes`));
        tr.appendChild(numCell(fmtBytes(r.grown_bytes), '', `${fmtInt(r.grown_bytes)} bytes`));
        tbody.appendChild(tr);
        if (isNum(r.retained_bytes)) listed += r.retained_bytes;
      }
      if (isNum(n.routes_folded) && n.routes_folded > 0) {
        const tr = el('tr', 'flame-route-more');
        tr.appendChild(el('td', 'left', `${fmtInt(n.routes_folded)} more route${n.routes_folded === 1 ? '' : 's'}`));
        tr.appendChild(numCell(fmtBytes(Math.max(0, n.retained_bytes - listed))));
        tr.appendChild(el('td'));
        tbody.appendChild(tr);
      }
      table.appendChild(tbody);
      detail.appendChild(table);
      detail.hidden = false;
    }

    graph.addEventListener('mousemove', (ev) => {
      const box = hit(ev.target);
      if (!box) {
        tip.hidden = true;
        return;
      }
      describe(drawn[Number(box.dataset.i)]);
      const r = wrap.getBoundingClientRect();
      placeTip(ev.clientX - r.left, ev.clientY - r.top);
    });
    graph.addEventListener('mouseleave', () => {
      tip.hidden = true;
    });
    graph.addEventListener('focusin', (ev) => {
      const box = hit(ev.target);
      if (!box) return;
      describe(drawn[Number(box.dataset.i)]);
      placeTip(box.offsetLeft, box.offsetTop);
    });
    graph.addEventListener('focusout', () => {
      tip.hidden = true;
    });
    graph.addEventListener('click', (ev) => {
      const box = hit(ev.target);
      if (box) select(Number(box.dataset.i));
    });
    graph.addEventListener('keydown', (ev) => {
      const box = hit(ev.target);
      if (box && (ev.key === 'Enter' || ev.key === ' ')) {
        ev.preventDefault();
        select(Number(box.dataset.i));
      }
    });

    return { render };
  }

  let rangeFlame = null;
  let routeFlame = null;

  // ---------------------------------------------------------------- log lines

  function renderLogLines() {
    const card = $('log-card');
    const lines = state.logLines && Array.isArray(state.logLines.lines) ? state.logLines.lines : [];
    const s = state.summary;
    const hasLog = !!(s && s.access_log) || lines.length > 0;
    card.hidden = !hasLog;
    if (!hasLog) return;
    const tbody = $('log-lines').tBodies[0];
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
      let text;
      if (l.ok || l.method || l.target) {
        text = [l.method, l.target, l.status].filter((x) => x !== null && x !== undefined && x !== '').join(' ');
      } else {
        text = l.raw == null ? '' : String(l.raw);
      }
      const lc = el('td', 'line mono', text);
      lc.title = l.raw ? String(l.raw) : text;
      tr.appendChild(lc);
      tbody.appendChild(tr);
    }
  }

  // ---------------------------------------------------------------- loading

  async function loadSummary() {
    const gen = ++seq.summary;
    try {
      const s = await api('/api/summary');
      if (gen !== seq.summary) return;
      state.summary = s;
      renderSummary();
      if (!state.sel) renderSelectionLabel();
      manageStream();
    } catch (e) {
      showError('/api/summary', e.message);
      // Nothing to show yet: try again in a while (the server may be restarting).
      if (!state.summary && !retryTimer) {
        retryTimer = setTimeout(() => {
          retryTimer = null;
          refreshAll();
        }, 5000);
      }
    }
  }
  let retryTimer = null;

  async function loadTimeline() {
    const gen = ++seq.timeline;
    const params = { points: timelinePoints(state.zoom || runBounds()) };
    if (state.zoom) {
      params.from = state.zoom.from;
      params.to = state.zoom.to;
    }
    try {
      const tl = await api('/api/timeline', params);
      if (gen !== seq.timeline) return;
      state.timeline = tl;
      renderTimeline();
    } catch (e) {
      showError('/api/timeline', e.message);
    }
  }

  async function loadRetained() {
    if (!state.retainedOn) return;
    const gen = ++seq.retained;
    const params = { points: timelinePoints(state.zoom || runBounds()), top: RETAINED_TOP };
    if (state.zoom) {
      params.from = state.zoom.from;
      params.to = state.zoom.to;
    }
    try {
      const r = await api('/api/retained', params);
      if (gen !== seq.retained || !state.retainedOn) return;
      state.retained = r;
      renderRetainedNote();
      renderTimeline();
    } catch (e) {
      showError('/api/retained', e.message);
    }
  }

  /** The chart's data: memory, requests and, when shown, retained memory by route. */
  function loadChart() {
    return Promise.all([loadTimeline(), loadRetained()]);
  }

  async function loadEndpoints() {
    const gen = ++seq.endpoints;
    try {
      const ep = await api('/api/endpoints', rangeParams());
      if (gen !== seq.endpoints) return;
      state.endpoints = ep;
      renderRoutes();
    } catch (e) {
      showError('/api/endpoints', e.message);
    }
  }

  async function loadRequests() {
    if (!state.route) return;
    const gen = ++seq.requests;
    const params = Object.assign({ route: state.route.route, method: state.route.method, limit: REQUEST_LIMIT }, rangeParams());
    try {
      const r = await api('/api/requests', params);
      if (gen !== seq.requests || !state.route) return;
      state.requests = r;
      renderRequests();
      if (chart) chart.redraw(false);
    } catch (e) {
      showError('/api/requests', e.message);
    }
  }

  async function loadStacks() {
    const gen = ++seq.stacks;
    try {
      const r = await api('/api/stacks', rangeParams());
      if (gen !== seq.stacks) return;
      state.stacks = r;
      if (rangeFlame) rangeFlame.render(r, 'all routes');
    } catch (e) {
      showError('/api/stacks', e.message);
    }
  }

  async function loadRouteStacks() {
    if (!state.route) return;
    const gen = ++seq.routeStacks;
    const { method, route } = state.route;
    try {
      // An empty route would mean no filter to apiUrl: the page lists no such route anyway.
      const r = await api('/api/stacks', Object.assign({ route, method }, rangeParams()));
      if (gen !== seq.routeStacks || !state.route) return;
      state.routeStacks = r;
      if (routeFlame) routeFlame.render(r, `${method} ${route}`);
    } catch (e) {
      showError('/api/stacks', e.message);
    }
  }

  async function loadLogLines() {
    const gen = ++seq.logLines;
    try {
      const r = await api('/api/log_lines', Object.assign({ limit: LOG_LIMIT }, rangeParams()));
      if (gen !== seq.logLines) return;
      state.logLines = r;
      renderLogLines();
    } catch (e) {
      showError('/api/log_lines', e.message);
    }
  }

  let refreshing = false;
  let refreshAgain = false;
  async function refreshAll() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      await loadSummary();
      await Promise.all([
        loadChart(), loadEndpoints(), loadStacks(), loadLogLines(),
        state.route ? loadRequests() : null, state.route ? loadRouteStacks() : null,
      ]);
    } finally {
      refreshing = false;
      if (refreshAgain) {
        refreshAgain = false;
        refreshAll();
      }
    }
  }

  // ---------------------------------------------------------------- live updates

  let stream = null;
  let fallbackTimer = null;

  function manageStream() {
    const live = !!(state.summary && state.summary.live);
    if (live && !stream && typeof EventSource === 'function') {
      stream = new EventSource(apiUrl('/api/stream'));
      stream.addEventListener('open', () => {
        state.streaming = true;
        renderSummary();
      });
      stream.addEventListener('update', () => {
        state.streaming = true;
        state.lastUpdate = Date.now();
        refreshAll();
      });
      stream.addEventListener('error', () => {
        state.streaming = false;
        renderSummary();
      });
    }
    if (live && !fallbackTimer) {
      state.lastUpdate = Date.now();
      fallbackTimer = setInterval(() => {
        if (Date.now() - state.lastUpdate >= LIVE_FALLBACK_MS) {
          state.lastUpdate = Date.now();
          refreshAll();
        }
      }, 500);
    }
    if (!live) {
      if (stream) {
        stream.close();
        stream = null;
        state.streaming = false;
        // The recording just ended: one last look at everything.
        refreshAll();
      }
      if (fallbackTimer) {
        clearInterval(fallbackTimer);
        fallbackTimer = null;
      }
    }
  }

  // ---------------------------------------------------------------- start

  function init() {
    if (typeof uPlot !== 'function') {
      showError('uPlot', 'the chart library /assets/vendor/uPlot.iife.min.js did not load');
      return;
    }
    $('error-close').addEventListener('click', () => {
      errors.clear();
      renderErrors();
    });
    $('clear-selection').addEventListener('click', () => setSelection(null));
    $('zoom-selection').addEventListener('click', () => {
      if (state.sel) zoomTo({ from: state.sel.from, to: state.sel.to });
    });
    $('zoom-reset').addEventListener('click', resetZoom);
    $('retained-toggle').addEventListener('click', () => setRetained(!state.retainedOn));
    $('close-route').addEventListener('click', closeRoute);
    $('routes').tHead.addEventListener('click', onSortClick);
    const tbody = $('routes').tBodies[0];
    tbody.addEventListener('click', onRouteClick);
    tbody.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        onRouteClick(ev);
      }
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.sel && !ev.target.closest('input, textarea')) setSelection(null);
    });
    let resizeQueued = false;
    new ResizeObserver(() => {
      if (resizeQueued) return;
      resizeQueued = true;
      requestAnimationFrame(() => {
        resizeQueued = false;
        resizeCharts();
      });
    }).observe($('chart'));
    rangeFlame = makeFlame($('range-flame'), true);
    routeFlame = makeFlame($('route-flame'), false);
    renderSortIndicators();
    updateButtons();
    refreshAll();
  }

  // Test hook for the browser end-to-end test (tests/e2e/page.test.mjs); not an API.
  window.memwatch = {
    get chart() {
      return chart;
    },
    get lane() {
      return lane;
    },
    /** CSS pixels from the left edge of the main chart's `.u-over` to time `ms`. */
    valToPos(ms) {
      return chart ? chart.valToPos(ms, 'x') : NaN;
    },
    select(from, to) {
      // The API takes whole milliseconds, as a drag produces.
      setSelection(from == null ? null : { from: Math.floor(from), to: Math.ceil(to) });
    },
    clearSelection() {
      setSelection(null);
    },
    /** Resolves once no API request is in flight. */
    idle() {
      return pending === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r));
    },
    requestLimit: REQUEST_LIMIT,
    memTickLabels,
    /** How many request bands the last chart draw highlighted. */
    get highlightCount() {
      return highlightCount;
    },
    state,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
