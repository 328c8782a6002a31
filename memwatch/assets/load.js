// @ts-check
// Each part of the page loaded from its endpoint: the answer is kept in the state and drawn,
// unless a later load of the same kind began meanwhile (a newer selection, a newer second).
// A failure goes to the error bar, named by its endpoint.

import { api, messageOf, showError } from './api.js';
import { pointsFor, redrawChart, renderRetainedNote, renderTimeline } from './chart.js';
import { renderRangeFlame, renderRouteFlame } from './flame.js';
import { renderSummary } from './header.js';
import { renderLogLines } from './log_lines.js';
import { renderRequests } from './requests.js';
import { renderRoutes, renderSelectionLabel } from './routes.js';
import { LOG_LIMIT, REQUEST_LIMIT, RETAINED_TOP, rangeParams, runBounds, seq, state } from './state.js';

/**
 * Loads `path` as the newest load of its `kind`, and hands the answer to `use` unless a later
 * load of that kind began meanwhile or `still()` no longer wants it; a failure goes to the error
 * bar under `path`.
 * @param {keyof typeof seq} kind
 * @param {string} path
 * @param {import('./api.js').Params} params
 * @param {(answer: any) => void} use
 * @param {() => boolean} [still]
 * @returns {Promise<boolean>} whether `use` was given an answer
 */
async function load(kind, path, params, use, still = () => true) {
  const gen = ++seq[kind];
  try {
    const answer = await api(path, params);
    if (gen !== seq[kind] || !still()) return false;
    use(answer);
    return true;
  } catch (e) {
    showError(path, messageOf(e));
    return false;
  }
}

/**
 * The recording's summary, into the header (and the selection label while it shows the run).
 * @returns {Promise<boolean>} whether a new summary was drawn
 */
export function loadSummary() {
  return load('summary', '/api/summary', {}, (s) => {
    state.summary = s;
    renderSummary();
    if (!state.sel) renderSelectionLabel();
  });
}

/** The zoomed range (or the whole run) as the timeline's and /api/retained's parameters. */
function chartParams() {
  /** @type {import('./api.js').Params} */
  const params = { points: pointsFor(state.zoom || runBounds()) };
  if (state.zoom) {
    params.from = state.zoom.from;
    params.to = state.zoom.to;
  }
  return params;
}

function loadTimeline() {
  return load('timeline', '/api/timeline', chartParams(), (tl) => {
    state.timeline = tl;
    renderTimeline();
  });
}

/** Retained memory by route, while the toggle is on. */
export async function loadRetained() {
  if (!state.retainedOn) return;
  const params = Object.assign(chartParams(), { top: RETAINED_TOP });
  await load('retained', '/api/retained', params, (r) => {
    state.retained = r;
    renderRetainedNote();
    renderTimeline();
  }, () => state.retainedOn);
}

/** The chart's data: memory, requests and, when shown, retained memory by route. */
export function loadChart() {
  return Promise.all([loadTimeline(), loadRetained()]);
}

/** The routes of the selected range (or the whole run). */
export function loadEndpoints() {
  return load('endpoints', '/api/endpoints', rangeParams(), (ep) => {
    state.endpoints = ep;
    renderRoutes();
  });
}

/** The clicked route's requests, listed and highlighted on the chart. */
export async function loadRequests() {
  if (!state.route) return;
  const params = Object.assign({ route: state.route.route, method: state.route.method, limit: REQUEST_LIMIT }, rangeParams());
  await load('requests', '/api/requests', params, (r) => {
    state.requests = r;
    renderRequests();
    redrawChart();
  }, () => !!state.route);
}

/** The range's call sites, all routes. */
export function loadStacks() {
  return load('stacks', '/api/stacks', rangeParams(), (r) => {
    state.stacks = r;
    renderRangeFlame(r);
  });
}

/** The clicked route's call sites. */
export async function loadRouteStacks() {
  if (!state.route) return;
  const { method, route } = state.route;
  // An empty route would mean no filter to apiUrl: the page lists no such route anyway.
  await load('routeStacks', '/api/stacks', Object.assign({ route, method }, rangeParams()), (r) => {
    state.routeStacks = r;
    renderRouteFlame(r, `${method} ${route}`);
  }, () => !!state.route);
}

/** Access-log lines without a request, in the range. */
export function loadLogLines() {
  return load('logLines', '/api/log_lines', Object.assign({ limit: LOG_LIMIT }, rangeParams()), (r) => {
    state.logLines = r;
    renderLogLines();
  });
}
