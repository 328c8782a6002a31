// @ts-check
// memwatch's page: memory over time, requests per bucket, and which routes made memory grow.
// This entry module wires what a user does (drag a range, zoom, click a route, toggle retained
// memory, sort) to the state and to what loads again; the other modules beside it draw and
// load each part (docs/architecture.md lists them).
//
// Test hook: `window.memwatch` (at the end of this file) exposes the uPlot charts,
// `valToPos(ms)` (x pixel of a time inside the chart's `.u-over` overlay), `select(from, to)`,
// `clearSelection()`, `idle()`, `requestLimit`, `memTickLabels`, `highlightCount` and the page
// `state` (`state.stacks` and `state.routeStacks` hold the call-site trees the icicles draw).

import { clearErrors, idle, showError } from './api.js';
import {
  applyXRange, charts, highlighted, onChartGestures, redrawChart, renderRetainedNote, renderTimeline,
  resizeCharts, shownX, syncSelectBoxes, updateButtons,
} from './chart.js';
import { $, button, table } from './dom.js';
import { initFlames, renderRouteFlame } from './flame.js';
import { memTickLabels } from './format.js';
import { refreshAll } from './live.js';
import { loadChart, loadEndpoints, loadLogLines, loadRequests, loadRetained, loadRouteStacks, loadStacks } from './load.js';
import { closeRequests, openRequests } from './requests.js';
import { markSelectedRow, onSortClick, renderSelectionLabel, renderSortIndicators, routeOfEvent } from './routes.js';
import { REQUEST_LIMIT, runBounds, seq, state } from './state.js';

/**
 * Selects `sel` (null: the whole run), and loads what the range shows. A live page keeps its x
 * range while something is selected, so that the selection does not slide away.
 * @param {import('./state.js').Range | null} sel
 */
function setSelection(sel) {
  state.sel = sel;
  if (sel && state.summary && state.summary.live && !state.zoom) {
    state.frozenX = shownX() || runBounds();
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

/** @param {import('./state.js').Range} range */
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

/** @param {boolean} on whether the chart draws retained memory by route */
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

/**
 * Opens a route's requests and call sites; the open route again closes them.
 * @param {import('./state.js').RouteKey} key
 */
function selectRoute(key) {
  const { method, route } = key;
  if (state.route && state.route.method === method && state.route.route === route) {
    closeRoute();
    return;
  }
  state.route = { method, route };
  state.requests = null;
  markSelectedRow(state.route);
  openRequests(method, route);
  state.routeStacks = null;
  renderRouteFlame(null);
  loadRequests();
  loadRouteStacks();
}

function closeRoute() {
  state.route = null;
  state.requests = null;
  state.routeStacks = null;
  seq.routeStacks++;
  state.hoverReq = null;
  closeRequests();
  markSelectedRow(null);
  redrawChart();
}

/** @param {Event} ev a click or key in the routes table's body */
function onRouteClick(ev) {
  const key = routeOfEvent(ev);
  if (key) selectRoute(key);
}

function init() {
  if (typeof uPlot !== 'function') {
    showError('uPlot', 'the chart library /assets/vendor/uPlot.iife.min.js did not load');
    return;
  }
  onChartGestures({ select: setSelection, resetZoom });
  $('error-close').addEventListener('click', clearErrors);
  $('clear-selection').addEventListener('click', () => setSelection(null));
  $('zoom-selection').addEventListener('click', () => {
    if (state.sel) zoomTo({ from: state.sel.from, to: state.sel.to });
  });
  $('zoom-reset').addEventListener('click', resetZoom);
  $('retained-toggle').addEventListener('click', () => setRetained(!state.retainedOn));
  button('close-route').addEventListener('click', closeRoute);
  const routes = table('routes');
  if (routes.tHead) routes.tHead.addEventListener('click', onSortClick);
  const tbody = routes.tBodies[0];
  tbody.addEventListener('click', onRouteClick);
  tbody.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      onRouteClick(ev);
    }
  });
  document.addEventListener('keydown', (ev) => {
    const inField = ev.target instanceof Element && ev.target.closest('input, textarea');
    if (ev.key === 'Escape' && state.sel && !inField) setSelection(null);
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
  initFlames();
  renderSortIndicators();
  updateButtons();
  refreshAll();
}

// Test hook for the browser end-to-end test (tests/e2e/page.test.mjs); not an API.
/** @type {Window & {memwatch?: object}} */ (window).memwatch = {
  get chart() {
    return charts().chart;
  },
  get lane() {
    return charts().lane;
  },
  /**
   * CSS pixels from the left edge of the main chart's `.u-over` to time `ms`.
   * @param {number} ms
   */
  valToPos(ms) {
    const { chart } = charts();
    return chart ? chart.valToPos(ms, 'x') : NaN;
  },
  /**
   * @param {number | null} from
   * @param {number} to
   */
  select(from, to) {
    // The API takes whole milliseconds, as a drag produces.
    setSelection(from == null ? null : { from: Math.floor(from), to: Math.ceil(to) });
  },
  clearSelection() {
    setSelection(null);
  },
  /** Resolves once no API request is in flight. */
  idle,
  requestLimit: REQUEST_LIMIT,
  memTickLabels,
  /** How many request bands the last chart draw highlighted. */
  get highlightCount() {
    return highlighted();
  },
  state,
};

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
