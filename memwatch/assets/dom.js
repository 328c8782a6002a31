// @ts-check
// Building the page. Everything the API returns came from the network or from a traced process
// and is treated as hostile: elements are made with createElement and filled with textContent
// only, never from HTML strings.

import { fmtInt, hasCounts, isNum } from './format.js';

/**
 * The element with `id`, which index.html has.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e;
}

/**
 * The table with `id`.
 * @param {string} id
 * @returns {HTMLTableElement}
 */
export function table(id) {
  const e = $(id);
  if (!(e instanceof HTMLTableElement)) throw new Error(`#${id} is no table`);
  return e;
}

/**
 * The first body of the table with `id`, where its rows go.
 * @param {string} id
 */
export function tbodyOf(id) {
  return table(id).tBodies[0];
}

/**
 * The button with `id`.
 * @param {string} id
 * @returns {HTMLButtonElement}
 */
export function button(id) {
  const e = $(id);
  if (!(e instanceof HTMLButtonElement)) throw new Error(`#${id} is no button`);
  return e;
}

/**
 * An element with optional class and text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string | null} [cls]
 * @param {unknown} [text] shown as text, whatever it holds
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/** @param {Node} node Removes every child of `node`. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/**
 * A right-aligned table cell.
 * @param {string} text
 * @param {string} [cls]
 * @param {string} [title]
 */
export function numCell(text, cls, title) {
  const td = el('td', 'num' + (cls ? ' ' + cls : ''), text);
  if (title) td.title = title;
  return td;
}

/**
 * Fills `node` with "kind count" chips from a {kind: count} object.
 * @param {HTMLElement} node
 * @param {unknown} obj
 */
export function renderCounts(node, obj) {
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
