// @ts-check
// What the page shows: the last answer of each endpoint, the selected range, the zoom, the
// clicked route; the sequence numbers that let only the newest answer of each kind be drawn;
// and the time range the charts span.

import { isNum } from './format.js';

/**
 * A time range in epoch milliseconds.
 * @typedef {{from: number, to: number}} Range
 */

/**
 * A route of the table, as the API names it.
 * @typedef {{method: string, route: string}} RouteKey
 */

/** Rows fetched for the selected route's request list (and drawn on the chart). */
export const REQUEST_LIMIT = 500;
/** Access-log lines fetched for the unmatched-lines table. */
export const LOG_LIMIT = 200;
/** Routes with a retained-memory line of their own (the API allows up to 20). */
export const RETAINED_TOP = 5;

/**
 * @typedef {object} PageState
 * @property {import('./api.js').Summary | null} summary
 * @property {import('./api.js').Timeline | null} timeline
 * @property {Range | null} sel Selected range, or null for the whole run.
 * @property {Range | null} zoom Zoomed x range, or null to show the whole run.
 * @property {Range | null} frozenX Live mode with a selection: the x range stays where it was.
 * @property {RouteKey | null} route Clicked route.
 * @property {import('./api.js').Endpoints | null} endpoints
 * @property {{key: string, dir: number}} sort The routes table's column, and 1 or -1.
 * @property {import('./api.js').Requests | null} requests
 * @property {import('./api.js').LogLines | null} logLines
 * @property {import('./api.js').Stacks | null} stacks The last /api/stacks answer for the range.
 * @property {import('./api.js').Stacks | null} routeStacks The same for the clicked route.
 * @property {import('./api.js').Request | null} hoverReq The request row under the mouse.
 * @property {boolean} retainedOn Whether the chart draws retained memory by route.
 * @property {import('./api.js').Retained | null} retained The last /api/retained answer while
 *   the toggle is on.
 * @property {boolean} streaming Whether the live event stream is open.
 * @property {number} lastUpdate When the last `update` event (or poll) came, epoch ms.
 */

/** @type {PageState} */
export const state = {
  summary: null,
  timeline: null,
  sel: null,
  zoom: null,
  frozenX: null,
  route: null,
  endpoints: null,
  sort: { key: 'kept_per_request_bytes', dir: -1 },
  requests: null,
  logLines: null,
  stacks: null,
  routeStacks: null,
  hoverReq: null,
  retainedOn: false,
  retained: null,
  streaming: false,
  lastUpdate: 0,
};

/**
 * Each load bumps its own number and draws its answer only if no later load began meanwhile.
 */
export const seq = { summary: 0, timeline: 0, retained: 0, endpoints: 0, requests: 0, logLines: 0, stacks: 0, routeStacks: 0 };

/** The selected range as query parameters: none for the whole run. */
export const rangeParams = () => (state.sel ? { from: state.sel.from, to: state.sel.to } : {});

/**
 * The recording's time span: from its start to its end, or to the latest data while it
 * records (`now` when it has none yet); never empty.
 * @param {import('./api.js').Summary | null} s
 * @param {number} now epoch ms
 * @returns {Range | null}
 */
export function boundsOf(s, now) {
  if (!s) return null;
  const from = s.started_ms;
  const to = isNum(s.ended_ms) ? s.ended_ms : isNum(s.latest_ms) ? s.latest_ms : now;
  return isNum(from) ? { from, to: Math.max(to, from + 1) } : null;
}

/** The recording's time span now. */
export const runBounds = () => boundsOf(state.summary, Date.now());

/** The x range the charts show: the zoom, else where a live page's selection froze it, else the run. */
export function xRange() {
  if (state.zoom) return state.zoom;
  if (state.frozenX) return state.frozenX;
  return runBounds();
}
