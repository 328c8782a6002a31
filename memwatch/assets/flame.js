// @ts-check
// The icicles (flame graphs with callers above callees) of retained memory by call site, from
// /api/stacks: one for the range, one for the clicked route. Where each frame goes is worked
// out apart from the DOM (`layoutFlame`, checked by tests/e2e/unit/flame.test.mjs); the widget
// draws the frames as elements, shows a frame's module and bytes on hover, and lists the routes
// that reached a clicked frame. Names are text only (textContent).

import { clear, el, numCell, $ } from './dom.js';
import { fmtBytes, fmtInt, isNum, trimZeros } from './format.js';
import { state } from './state.js';

/** Height of one level of the icicle, in CSS pixels. */
const FLAME_ROW = 18;
/** Frames narrower than this many pixels are not drawn (their bytes are in their caller's). */
export const FLAME_MIN_PX = 0.5;

/**
 * A frame of the icicle: a call site, or the root that stands for the whole range (or route).
 * @typedef {object} FlameNode
 * @property {string} name
 * @property {string | null} [module] null for the placeholders, undefined for the root
 * @property {boolean} [root]
 * @property {number} retained_bytes
 * @property {number} grown_bytes
 * @property {import('./api.js').StackRoute[]} routes
 * @property {number} routes_folded
 * @property {FlameNode[]} children
 */

/**
 * Where a frame is drawn.
 * @typedef {object} FlameBox
 * @property {FlameNode} node
 * @property {FlameNode[]} path the root first, the node last
 * @property {number} level 0 for the root
 * @property {number} x left edge, as a share of the root's width
 * @property {number} w width, as a share of the root's width
 * @property {boolean} leaf whether none of its callees is drawn
 */

/**
 * Lays out the icicle under `root`: each frame as wide as its share of the root's retained
 * bytes, its callees under it from its left edge in the order given, and frames narrower than
 * FLAME_MIN_PX of `widthPx` left out with everything under them. Boxes come callers first
 * (depth-first), the order they are drawn in.
 * @param {FlameNode} root retained_bytes > 0
 * @param {number} widthPx
 * @returns {{boxes: FlameBox[], depth: number}} depth: the deepest level drawn
 */
export function layoutFlame(root, widthPx) {
  const total = root.retained_bytes;
  /** @type {FlameBox[]} */
  const boxes = [];
  let depth = 0;
  /**
   * @param {FlameNode} node
   * @param {number} level
   * @param {number} x
   * @param {FlameNode[]} path
   */
  const place = (node, level, x, path) => {
    const w = (isNum(node.retained_bytes) ? node.retained_bytes : 0) / total;
    if (w * widthPx < FLAME_MIN_PX) return false;
    const here = path.concat([node]);
    /** @type {FlameBox} */
    const box = { node, path: here, level, x, w, leaf: true };
    boxes.push(box);
    depth = Math.max(depth, level);
    let cx = x;
    let any = false;
    for (const c of Array.isArray(node.children) ? node.children : []) {
      if (place(c, level + 1, cx, here)) any = true;
      cx += (isNum(c.retained_bytes) ? c.retained_bytes : 0) / total;
    }
    box.leaf = !any;
    return true;
  };
  place(root, 0, 0, []);
  return { boxes, depth };
}

/**
 * A frame's identity across answers: the names and modules from the outermost frame down.
 * @param {FlameNode[]} path without the root
 */
export const flameKey = (path) => JSON.stringify(path.map((n) => [n.name, n.module]));

/**
 * A warm colour per function name, the same on every draw; grey for the placeholders.
 * @param {{name: string, module?: string | null}} node
 */
export function flameColor(node) {
  if (node.module === null || node.module === undefined) return '#ced4da';
  const name = String(node.name);
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0;
  const u = (h >>> 0) / 4294967296;
  return `hsl(${Math.round(6 + u * 44)}, ${Math.round(78 + ((h >>> 5) & 7) * 2)}%, ${Math.round(66 + ((h >>> 9) & 7) * 2)}%)`;
}

/**
 * "GET /a", or what route "" stands for.
 * @param {{method?: string | null, route?: string | null}} r
 */
export function routeName(r) {
  if (r.route === '') return 'outside requests';
  return `${r.method == null ? '' : r.method} ${r.route == null ? '' : r.route}`;
}

/**
 * @typedef {{render: (answer: import('./api.js').Stacks | null, label?: string) => void}} Flame
 */

/**
 * An icicle of retained memory by call site drawn into `host` from /api/stacks answers: the
 * range (or route) on top, the outermost frames under it, each callee under its caller, widths
 * proportional to retained bytes. Hovering a frame shows its name, module, retained and grown
 * bytes; clicking it lists the routes that reached it.
 * @param {HTMLElement} host
 * @param {boolean} explain whether to say how to record call sites when the recording has none
 * @returns {Flame}
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
  /** @type {FlameBox[]} */
  let drawn = [];
  let total = 0;
  /** The clicked frame's path of names and modules, kept across redraws. */
  /** @type {string | null} */
  let selectedKey = null;
  /** What was drawn last: a live page refetches every second, mostly the same answer. */
  /** @type {string | null} */
  let drawnFrom = null;

  /** @param {(string | Node)[]} parts */
  function showNote(parts) {
    clear(note);
    for (const p of parts) note.appendChild(typeof p === 'string' ? document.createTextNode(p) : p);
    note.hidden = false;
  }

  /**
   * @param {import('./api.js').Stacks | null} answer
   * @param {string} [label] the root's name
   */
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
    /** @type {FlameNode} */
    const root = {
      name: String(label),
      module: undefined,
      root: true,
      retained_bytes: total,
      grown_bytes: grown,
      routes: answer.routes,
      routes_folded: answer.routes_folded,
      children: answer.roots,
    };
    const width = graph.clientWidth || host.clientWidth || 1200;
    const { boxes, depth } = layoutFlame(root, width);
    drawn = boxes;
    /** @type {number | null} */
    let selected = null;
    boxes.forEach((b, i) => {
      const box = el('div', 'flame-node');
      box.dataset.i = String(i);
      box.dataset.depth = String(b.level);
      box.style.left = (b.x * 100).toFixed(4) + '%';
      box.style.width = (b.w * 100).toFixed(4) + '%';
      box.style.top = b.level * FLAME_ROW + 'px';
      box.style.background = b.node.root ? '#e4ddf8' : flameColor(b.node);
      box.tabIndex = 0;
      box.setAttribute('role', 'button');
      box.appendChild(el('span', 'flame-label', b.node.name));
      if (b.leaf) box.classList.add('leaf');
      graph.appendChild(box);
      if (selectedKey !== null && flameKey(b.path.slice(1)) === selectedKey) selected = i;
    });
    graph.style.height = (depth + 1) * FLAME_ROW + 'px';
    if (selected !== null) select(selected);
    else {
      selectedKey = null;
      detail.hidden = true;
    }
  }

  /** @param {FlameBox | undefined} d */
  function describe(d) {
    if (!d) return;
    const n = d.node;
    clear(tip);
    tip.appendChild(el('div', 'flame-tip-name', n.name));
    if (!n.root) tip.appendChild(el('div', 'flame-tip-module', n.module == null ? 'no module' : n.module));
    const share = total > 0 ? ` (${trimZeros(((n.retained_bytes / total) * 100).toFixed(1))}%)` : '';
    tip.appendChild(el('div', 'flame-tip-bytes', `retained ${fmtBytes(n.retained_bytes)}${share} · grown ${fmtBytes(n.grown_bytes)}`));
  }

  /**
   * @param {number} x
   * @param {number} y
   */
  function placeTip(x, y) {
    const w = wrap.clientWidth;
    tip.hidden = false;
    const tw = tip.offsetWidth;
    tip.style.left = Math.max(0, Math.min(w - tw, x + 12)) + 'px';
    tip.style.top = y + 16 + 'px';
  }

  /**
   * The frame element `target` is in, if any.
   * @param {EventTarget | null} target
   * @returns {HTMLElement | null}
   */
  function hit(target) {
    const box = target instanceof Element ? target.closest('.flame-node') : null;
    return box instanceof HTMLElement && graph.contains(box) ? box : null;
  }

  /** @param {number} i */
  function select(i) {
    const d = drawn[i];
    if (!d) return;
    selectedKey = flameKey(d.path.slice(1));
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

/** @type {Flame | null} */
let rangeFlame = null;
/** @type {Flame | null} */
let routeFlame = null;

/** Makes the range's icicle and the clicked route's in their places on the page. */
export function initFlames() {
  rangeFlame = makeFlame($('range-flame'), true);
  routeFlame = makeFlame($('route-flame'), false);
}

/**
 * Draws the range's call sites, all routes.
 * @param {import('./api.js').Stacks | null} answer
 */
export function renderRangeFlame(answer) {
  if (rangeFlame) rangeFlame.render(answer, 'all routes');
}

/**
 * Draws the clicked route's call sites under `label`; null empties it while they load.
 * @param {import('./api.js').Stacks | null} answer
 * @param {string} [label]
 */
export function renderRouteFlame(answer, label) {
  if (routeFlame) routeFlame.render(answer, label);
}
