// @ts-check
// Keeping the page current: everything loaded again, one refresh at a time; while memwatch
// records, again on each `update` of /api/stream, or by polling when the stream is silent; a
// last time when the recording ends; and every 5 s while the server does not answer at all.

import { apiUrl } from './api.js';
import { renderSummary } from './header.js';
import { loadChart, loadEndpoints, loadLogLines, loadRequests, loadRouteStacks, loadStacks, loadSummary } from './load.js';
import { state } from './state.js';

/** Without an `update` event for this long, a live page polls by itself. */
const LIVE_FALLBACK_MS = 2500;
/** With no summary yet, how long until the page asks again (the server may be restarting). */
const RETRY_MS = 5000;

let refreshing = false;
let refreshAgain = false;
/** @type {ReturnType<typeof setTimeout> | null} */
let retryTimer = null;

/** Loads everything the page shows; a call while a refresh runs makes one more after it. */
export async function refreshAll() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    if (await loadSummary()) manageStream();
    else if (!state.summary && !retryTimer) {
      // Nothing to show yet: try again in a while.
      retryTimer = setTimeout(() => {
        retryTimer = null;
        refreshAll();
      }, RETRY_MS);
    }
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

/** @type {EventSource | null} */
let stream = null;
/** @type {ReturnType<typeof setInterval> | null} */
let fallbackTimer = null;

/** Follows the recording while the summary says it is live; stops when it ends. */
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
