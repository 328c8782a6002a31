// @ts-check
// The JSON API (docs/api.md): its answers' types, the token the page was opened with, the
// fetches (counted, so that the browser test can wait for none in flight), and the error bar
// that says which endpoint failed and why. The types say what the server sends; the code that
// reads an answer still checks each value, since a recording is a file anyone can edit.

import { $, clear, el } from './dom.js';

/**
 * @typedef {object} Process
 * @property {number} pid
 * @property {number} ppid
 * @property {string} comm
 * @property {string} origin
 * @property {number} started_ms
 * @property {number | null} exited_ms
 */

/**
 * @typedef {object} AccessLogSummary
 * @property {number} lines
 * @property {number} parsed
 * @property {number | Record<string, number>} rejected
 * @property {number} matched
 * @property {number} [unmatched_lines]
 * @property {number} [unmatched] older recordings' name for `unmatched_lines`
 * @property {number} unmatched_requests
 * @property {string | string[]} format
 * @property {string} mode
 */

/**
 * `GET /api/summary`.
 * @typedef {object} Summary
 * @property {boolean} live
 * @property {number} started_ms
 * @property {number | null} ended_ms
 * @property {number | null} latest_ms
 * @property {number} duration_s
 * @property {Process[]} processes
 * @property {number} dropped_events
 * @property {{dropped_events: number, unpaired_exits: number, map_full: number, undecodable: number}} lost
 * @property {number} requests
 * @property {number} approximate_requests
 * @property {number | null} [command_stopped_ms] when memwatch stopped the command it started;
 *   the routes' figures end there
 * @property {Record<string, number>} non_http
 * @property {{rss_start_bytes: number, rss_end_bytes: number, rss_peak_bytes: number,
 *   vm_start_bytes: number, vm_end_bytes: number, vm_peak_bytes: number}} memory
 * @property {AccessLogSummary | null} access_log
 * @property {{writer_shed_rows?: number, pids_reused?: number} | null} memwatch
 * @property {boolean | null} redact_query
 */

/**
 * A series of samples: times and values of the same length.
 * @typedef {{t: number[], v: number[]}} Samples
 */

/**
 * @typedef {object} MemEvent
 * @property {number} t
 * @property {string} op mmap, mremap, brk or munmap
 * @property {number} bytes negative when memory was given back
 * @property {number} pid
 */

/**
 * Requests that ended in each bucket, by status class.
 * @typedef {{t: number[], width_ms: number, s2xx: number[], s3xx: number[], s4xx: number[],
 *   s5xx: number[], other: number[]}} RequestBuckets
 */

/**
 * `GET /api/timeline`.
 * @typedef {object} Timeline
 * @property {number} from_ms
 * @property {number} to_ms
 * @property {Samples} rss
 * @property {Samples} vm
 * @property {RequestBuckets} requests
 * @property {MemEvent[]} mem_events
 */

/**
 * @typedef {object} Regression
 * @property {number} kept_per_request_bytes
 * @property {number | null} kept_per_request_low_bytes
 * @property {number | null} kept_per_request_high_bytes
 */

/**
 * One route of `GET /api/endpoints`.
 * @typedef {object} Endpoint
 * @property {string} method
 * @property {string} route
 * @property {number} requests
 * @property {Record<string, number>} statuses
 * @property {number} vm_bytes
 * @property {number} rss_bytes
 * @property {number} vm_bytes_mean
 * @property {number} rss_bytes_mean
 * @property {number} duration_ms_p50
 * @property {number} duration_ms_p95
 * @property {number} page_faults
 * @property {number} mem_calls
 * @property {number} approximate
 * @property {number | null} grown_bytes
 * @property {number | null} released_bytes
 * @property {number | null} retained_bytes
 * @property {number | null} kept_per_request_bytes
 * @property {string} [kept_from] origin, regression or sampled_heap: which estimate kept per request is
 * @property {string} retention keeps, high-water, none, too-few or unknown
 * @property {{followed_requests: number, kept_per_request_low_bytes: number | null,
 *   kept_per_request_high_bytes: number | null}} [sampled]
 * @property {Regression | null} [regression]
 * @property {{kept_per_request_bytes: number, kept_per_request_low_bytes: number,
 *   kept_per_request_high_bytes: number, requests: number, samples: number,
 *   samples_kept: number} | null} [sampled_heap] kept per request from a Go program's own sampled heap
 */

/**
 * @typedef {object} Disagreement
 * @property {string} method
 * @property {string} route
 * @property {number} origin_bytes
 * @property {number} regression_bytes
 * @property {string} trust origin or regression
 * @property {string} why
 */

/**
 * @typedef {object} RegressionFit
 * @property {string} signal live_heap, swept_heap, kept_heap, kept_spans, heap or rss
 * @property {number} intervals
 * @property {number} interval_ms
 * @property {number | null} explained
 * @property {boolean} primary
 * @property {string[]} collinear
 * @property {string[]} [overlapping] pairs of routes whose intervals overlap, so that routes
 *   whose requests shared a thread keep the origin's figure
 * @property {Disagreement[]} disagreements
 */

/**
 * @typedef {object} HeapFollowed
 * @property {boolean} followed
 * @property {number} blocks
 * @property {number} processes_not_followed
 * @property {number} runtimes_not_followed processes whose JVM, Go, Node.js or Ruby
 *   collections could not be followed (their probes did not attach)
 * @property {number} [collections] collections the collection probes saw
 * @property {number} [collections_recorded] the live-heap figures they gave
 * @property {{samples: number, samples_outside: number, freed: number, unknown_frees: number,
 *   rates: string}} [go_samples] what a Go program's own sampled heap came to
 * @property {number | null} budget_share
 * @property {number | null} cost_share
 * @property {number | null} on_fraction
 * @property {{requests_followed: number, requests_sampled_out: number} | null} [sampling]
 * @property {string} [note]
 */

/**
 * How the range's figures reconcile with the resident set.
 * @typedef {object} RetainedTotals
 * @property {number} rss_change_bytes
 * @property {number} retained_bytes
 * @property {number} outside_grown_bytes
 * @property {number} outside_released_bytes
 * @property {number} released_from_before_bytes
 * @property {number} unexplained_bytes
 * @property {number} unmatched_release_bytes
 * @property {number | null} unseen_release_bytes
 * @property {number} untracked_bytes
 * @property {HeapFollowed | null} [heap]
 * @property {RegressionFit | null} [regression]
 */

/**
 * `GET /api/endpoints`.
 * @typedef {object} Endpoints
 * @property {Endpoint[]} endpoints
 * @property {Record<string, number>} non_http
 * @property {RetainedTotals | null} retained
 * @property {number} unmatched_lines
 */

/**
 * `GET /api/retained`: every series has one value per entry of `t`.
 * @typedef {object} Retained
 * @property {number[]} t
 * @property {{method: string, route: string, v: number[]}[]} routes
 * @property {number[]} other
 * @property {number[]} outside
 */

/**
 * A route's share of a call site's memory; route "" is memory made outside requests.
 * @typedef {{method: string, route: string, grown_bytes: number, retained_bytes: number}} StackRoute
 */

/**
 * A call site of `GET /api/stacks`: its callees are its children.
 * @typedef {object} StackNode
 * @property {string} name
 * @property {string | null} module null for `[no stack taken]`
 * @property {number} grown_bytes
 * @property {number} retained_bytes
 * @property {StackRoute[]} routes
 * @property {number} routes_folded
 * @property {StackNode[]} children
 */

/**
 * `GET /api/stacks`.
 * @typedef {object} Stacks
 * @property {boolean} recorded
 * @property {number} grown_bytes
 * @property {number} retained_bytes
 * @property {StackRoute[]} routes
 * @property {number} routes_folded
 * @property {StackNode[]} roots
 * @property {number} folded_nodes
 * @property {number} folded_retained_bytes
 */

/**
 * One request of `GET /api/requests`.
 * @typedef {object} Request
 * @property {number} id
 * @property {number} start_ms
 * @property {number | null} end_ms
 * @property {number} duration_ms
 * @property {number} pid
 * @property {number} tid
 * @property {string} method
 * @property {string} target
 * @property {string | null} host
 * @property {number | null} status
 * @property {number} bytes_in
 * @property {number} bytes_out
 * @property {number} vm_bytes
 * @property {number} rss_bytes
 * @property {boolean} exact
 * @property {number | null} grown_bytes
 * @property {number | null} released_bytes
 * @property {number | null} retained_bytes
 * @property {string | null} user_agent
 */

/**
 * `GET /api/requests`.
 * @typedef {{total: number, truncated: boolean, requests: Request[]}} Requests
 */

/**
 * An access-log line of `GET /api/log_lines`: `ok` when it parsed and matched no request,
 * otherwise rejected for `reason`.
 * @typedef {object} LogLine
 * @property {number} arrived_ms
 * @property {number | null} ts_ms
 * @property {boolean} ok
 * @property {string | null} reason
 * @property {string | null} raw
 * @property {string | null} method
 * @property {string | null} target
 * @property {number | null} status
 */

/**
 * `GET /api/log_lines`.
 * @typedef {{lines: LogLine[]}} LogLines
 */

/**
 * Query parameters; empty ones are left out.
 * @typedef {Record<string, string | number | null | undefined>} Params
 */

/**
 * The token in the page's address (`#token=T`), which every API request carries as `?token=`.
 * @param {string} hash `location.hash`
 */
export function tokenOf(hash) {
  const h = hash.replace(/^#/, '');
  if (!h) return '';
  return new URLSearchParams(h).get('token') || '';
}

// No `location` outside a browser: the unit tests import this module in Node.
const token = typeof location === 'undefined' ? '' : tokenOf(location.hash);

/**
 * `path` with `params` and the token as its query.
 * @param {string} path
 * @param {Params} [params]
 * @param {string} [tok] the page's token by default
 */
export function apiUrl(path, params, tok = token) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  if (tok) q.set('token', tok);
  const s = q.toString();
  return path + (s ? '?' + s : '');
}

/** API requests in flight. */
let pending = 0;
/** @type {(() => void)[]} */
let idleWaiters = [];

function settle() {
  if (pending === 0) {
    const w = idleWaiters;
    idleWaiters = [];
    w.forEach((f) => f());
  }
}

/**
 * Resolves once no API request is in flight.
 * @returns {Promise<void>}
 */
export function idle() {
  return pending === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r));
}

/**
 * The JSON answer of `GET path?params`, or an error whose message says what went wrong (the
 * server's `error` when it gave one).
 * @param {string} path
 * @param {Params} [params]
 * @returns {Promise<any>} whatever the server sent, as JSON: the caller names its type
 */
export async function api(path, params) {
  pending++;
  try {
    let res;
    try {
      res = await fetch(apiUrl(path, params), { cache: 'no-store', headers: { Accept: 'application/json' } });
    } catch (e) {
      throw new Error(`the memwatch server did not answer (${messageOf(e)})`, { cause: e });
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

/** @param {unknown} e What a failed call threw, as a message. */
export function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------- error bar

/** The last error of each endpoint (or other source), until it answers again. */
const errors = new Map();

/**
 * @param {string} key the endpoint (or what failed)
 * @param {string} msg
 */
export function showError(key, msg) {
  errors.set(key, msg);
  renderErrors();
}

/** @param {string} key */
function clearError(key) {
  if (errors.delete(key)) renderErrors();
}

/** Forgets every error (the bar's Dismiss button). */
export function clearErrors() {
  errors.clear();
  renderErrors();
}

function renderErrors() {
  const bar = $('error-bar');
  if (errors.size === 0) {
    bar.hidden = true;
    return;
  }
  // One line per distinct message, naming every endpoint that answered it.
  /** @type {Map<string, string[]>} */
  const byMsg = new Map();
  for (const [key, msg] of errors) {
    const keys = byMsg.get(msg);
    if (keys) keys.push(key);
    else byMsg.set(msg, [key]);
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
