// @ts-check
// The memory chart and the request lane under it (uPlot, loaded before this module as the
// global `uPlot`): their axes and series, the data from the timeline, the retained-memory lines,
// the selection boxes both show, the legend and the hover line, the clicked route's requests as
// bands, and large mmap/brk changes as markers. What a drag or a double-click means is the
// caller's: see `onChartGestures`.

import { $, button, el } from './dom.js';
import { MiB, fmtBytes, fmtInt, fmtTime, isNum, memTickLabels, timeTickLabels } from './format.js';
import {
  CLASSES, COLOR, bucketText, carryForward, dragRange, laneOf, memEventsText, retainedLines, seriesOf,
  timelinePoints, toMiB, yRangePadded,
} from './series.js';
import { state, xRange } from './state.js';

const CHART_HEIGHT = 380;
const LANE_HEIGHT = 84;
const AXIS_LEFT = 76;
const AXIS_RIGHT = 76;
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif';
const AXIS_STROKE = '#5f6b7a';
const GRID = { stroke: 'rgba(31, 41, 55, 0.07)', width: 1 };
const TICKS = { stroke: 'rgba(31, 41, 55, 0.18)', width: 1, size: 4 };

/** @type {uPlot | null} */
let chart = null;
/** @type {uPlot | null} */
let lane = null;
/** Requests per lane bucket by status class, for the lane's legend and the hover line. */
/** @type {Record<string, number[]> | null} */
let laneRaw = null;
/** Keys of the retained-memory series the chart has after its RSS and VmSize series. */
/** @type {string[]} */
let retainedKeys = [];
/** How many request bands the last draw highlighted (the browser test reads it). */
let highlightCount = 0;

/** What a drag across either chart and a double-click on it do. */
const gestures = {
  /** @type {(range: import('./state.js').Range) => void} */
  select: () => {},
  /** @type {() => void} */
  resetZoom: () => {},
};

/**
 * Sets what a drag that selects `range`, and a double-click, do.
 * @param {{select: (range: import('./state.js').Range) => void, resetZoom: () => void}} handlers
 */
export function onChartGestures(handlers) {
  Object.assign(gestures, handlers);
}

/** The memory chart and the lane, once the first timeline has made them. */
export const charts = () => ({ chart, lane });

/** How many request bands the last draw highlighted. */
export const highlighted = () => highlightCount;

function plotWidth() {
  const w = $('chart').clientWidth;
  return Math.max(320, w || 1000);
}

/**
 * How many points to ask the timeline (and /api/retained) for over `range`.
 * @param {import('./state.js').Range | null} range
 */
export function pointsFor(range) {
  return timelinePoints(plotWidth() - AXIS_LEFT - AXIS_RIGHT, range);
}

/** @returns {uPlot.Cursor} */
function baseCursor() {
  return {
    sync: { key: 'memwatch', setSeries: false },
    drag: { x: true, y: false, setScale: false },
    y: false,
    points: { size: 7, width: 2 },
    bind: {
      dblclick: () => () => {
        gestures.resetZoom();
        return null;
      },
    },
  };
}

/**
 * @param {boolean} showValues
 * @returns {uPlot.Axis}
 */
function xAxis(showValues) {
  return {
    stroke: AXIS_STROKE,
    font: FONT,
    grid: GRID,
    ticks: TICKS,
    size: showValues ? 30 : 4,
    values: showValues
      ? (u, splits, axisIdx, space, incr) => timeTickLabels(splits, incr)
      : (u, splits) => splits.map(() => ''),
    space: 90,
  };
}

/**
 * @param {string} scale
 * @param {number} side 3: left, 1: right
 * @param {string} label
 * @param {string} stroke
 * @param {boolean} grid
 * @returns {uPlot.Axis}
 */
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

/**
 * @param {uPlot} u
 * @param {number | null} min
 * @param {number | null} max
 * @returns {uPlot.Range.MinMax}
 */
const yRange = (u, min, max) => yRangePadded(min, max);

/**
 * @param {uPlot} u
 * @param {number | null} v
 */
const mibValue = (u, v) => (v == null ? '–' : fmtBytes(v * MiB));

function makeChart() {
  /** @type {uPlot.Options} */
  const opts = {
    width: plotWidth(),
    height: CHART_HEIGHT,
    ms: 1,
    pxAlign: 1,
    cursor: baseCursor(),
    select: { show: true, left: 0, top: 0, width: 0, height: 0 },
    legend: { live: true, mount: (u, table) => $('legend').appendChild(table) },
    focus: { alpha: 0.35 },
    scales: {
      x: { time: true },
      rss: { range: yRange },
      vm: { range: yRange },
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
        value: mibValue,
      },
      {
        label: 'Virtual (VmSize)',
        scale: 'vm',
        stroke: COLOR.vm,
        width: 1.5,
        dash: [6, 4],
        spanGaps: true,
        points: { show: false },
        value: mibValue,
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
  const bars = uPlot.paths.bars?.({ size: [0.92, Infinity, 1], gap: 0 });
  /** @type {uPlot.Series[]} */
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
  /** @type {uPlot.Options} */
  const opts = {
    width: plotWidth(),
    height: LANE_HEIGHT,
    ms: 1,
    cursor: baseCursor(),
    select: { show: true, left: 0, top: 0, width: 0, height: 0 },
    legend: { show: false },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max || 1) * 1.1] } },
    series,
    axes: [
      xAxis(false),
      Object.assign(yAxis('y', 3, 'Requests', AXIS_STROKE, true), {
        space: 22,
        /** @type {uPlot.Axis.DynamicValues} */
        values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? fmtInt(v) : '')),
      }),
      Object.assign(yAxis('y', 1, '', 'transparent', false), {
        ticks: { show: false },
        /** @type {uPlot.Axis.DynamicValues} */
        values: (u, s) => s.map(() => ''),
      }),
    ],
    hooks: {
      setSelect: [onSelect],
      setCursor: [onCursor],
    },
  };
  return new uPlot(opts, [[], [], [], [], [], []], $('lane'));
}

/** The retained-memory lines to draw: none while the toggle is off. */
const retainedSeries = () => (state.retainedOn ? retainedLines(state.retained) : []);

/** Draws the last timeline (and retained memory) into both charts, making them the first time. */
export function renderTimeline() {
  const tl = state.timeline;
  if (!tl) return;
  const u = chart || (chart = trackDrags(makeChart()));
  const l = lane || (lane = trackDrags(makeLane()));

  const rss = seriesOf(tl.rss);
  const vm = seriesOf(tl.vm);
  const retained = retainedSeries();
  syncRetainedSeries(u, retained);
  /** @type {uPlot.AlignedData[]} */
  const tables = [/** @type {uPlot.AlignedData} */ (rss), /** @type {uPlot.AlignedData} */ (vm)];
  if (retained.length) tables.push([retained[0].t, ...retained.map((r) => toMiB(r.v))]);
  const joined = uPlot.join(tables);
  for (let i = 3; i < joined.length; i++) joined[i] = carryForward(joined[i]);
  u.setData(joined, false);
  $('chart-empty').hidden = rss[0].length + vm[0].length > 0;

  const bars = laneOf(tl.requests);
  laneRaw = bars.raw;
  l.setData([bars.xs, ...bars.stacks], false);
  applyXRange();
  showLatestLegend();
}

/**
 * Gives the chart one series per entry of `list` after RSS and VmSize, when they differ.
 * @param {uPlot} u
 * @param {import('./series.js').RetainedLine[]} list
 */
function syncRetainedSeries(u, list) {
  const keys = list.map((x) => x.key);
  if (keys.length === retainedKeys.length && keys.every((k, i) => k === retainedKeys[i])) return;
  for (let i = u.series.length - 1; i >= 3; i--) u.delSeries(i);
  const stepped = uPlot.paths.stepped?.({ align: 1 });
  for (const x of list) {
    // The legend shows the name as text, never as markup.
    const label = el('span', x.route ? 'series-route' : 'series-retained', x.text);
    label.title = x.title;
    /** @type {uPlot.Series} */
    const opts = {
      label,
      scale: 'rss',
      stroke: x.stroke,
      width: 1.5,
      paths: stepped,
      spanGaps: true,
      points: { show: false },
      value: mibValue,
    };
    if (x.dash) opts.dash = x.dash;
    u.addSeries(opts);
  }
  retainedKeys = keys;
}

/** Says why the "Retained by route" toggle draws nothing, if it does. */
export function renderRetainedNote() {
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

/** Both charts span `xRange()`, with the selection boxes and buttons to match. */
export function applyXRange() {
  const r = xRange();
  if (!r || !chart) return;
  chart.setScale('x', { min: r.from, max: r.to });
  if (lane) lane.setScale('x', { min: r.from, max: r.to });
  syncSelectBoxes();
  updateButtons();
}

/** Both charts show the selected range as their selection box. */
export function syncSelectBoxes() {
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

/** The buttons that act on the selection and the zoom, enabled when there is one. */
export function updateButtons() {
  button('zoom-selection').disabled = !state.sel;
  button('zoom-reset').disabled = !state.zoom;
  button('clear-selection').disabled = !state.sel;
}

/** The chart the user pressed the mouse on: the other one only mirrors its selection. */
/** @type {uPlot | null} */
let dragSource = null;

/** @param {uPlot} u */
function trackDrags(u) {
  u.over.addEventListener('mousedown', () => {
    dragSource = u;
  });
  return u;
}

/** @param {uPlot} u */
function onSelect(u) {
  if (dragSource !== null && u !== dragSource) return;
  const { left, width } = u.select;
  const range = dragRange(left, width, (px) => u.posToVal(px, 'x'));
  if (!range) {
    // A click, not a drag: keep the current selection.
    syncSelectBoxes();
    return;
  }
  if (state.sel && state.sel.from === range.from && state.sel.to === range.to) return; // the synced twin
  gestures.select(range);
}

/** With the cursor off the chart, the legend shows the latest values. */
function showLatestLegend() {
  if (!chart || chart.cursor.idx != null) return;
  const d = chart.data;
  /** @param {ArrayLike<number | null | undefined>} arr */
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
  if (lane && laneRaw && isNum(li) && lane.data[0][li] !== undefined) {
    const w = state.timeline && state.timeline.requests ? state.timeline.requests.width_ms : 0;
    parts.push(bucketText(laneRaw, li, w));
  }
  // Memory events drawn within a few pixels of the cursor, largest first.
  const evs = state.timeline && Array.isArray(state.timeline.mem_events) ? state.timeline.mem_events : [];
  const near = [];
  if (isNum(left) && left >= 0) {
    for (const e of evs) {
      if (isNum(e.t) && Math.abs(chart.valToPos(e.t, 'x') - left) <= 5) near.push(e);
    }
  }
  if (near.length) parts.unshift(memEventsText(near));
  info.classList.toggle('mem', near.length > 0);
  info.textContent = parts.join(' · ');
}

/**
 * Requests of the clicked route, as bands behind the memory lines.
 * @param {uPlot} u
 */
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
  /**
   * @param {import('./api.js').Request} r
   * @param {string} fill
   */
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

/**
 * Large mmap / mremap / brk changes as small triangles on the top edge.
 * @param {uPlot} u
 */
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

/** Redraws the memory chart (its highlighted requests changed). */
export function redrawChart() {
  if (chart) chart.redraw(false);
}

/** Both charts as wide as their card. */
export function resizeCharts() {
  const w = plotWidth();
  if (chart && chart.width !== w) chart.setSize({ width: w, height: CHART_HEIGHT });
  if (lane && lane.width !== w) lane.setSize({ width: w, height: LANE_HEIGHT });
  syncSelectBoxes();
}

/** The chart's x-axis scale now: where a live page's selection freezes it. */
export function shownX() {
  return chart && isNum(chart.scales.x.min) && isNum(chart.scales.x.max)
    ? { from: chart.scales.x.min, to: chart.scales.x.max }
    : null;
}
