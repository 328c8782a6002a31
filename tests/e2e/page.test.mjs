// Browser end-to-end test of the memwatch page, in Debian's headless Chromium via playwright-core.
//
//   cd tests/e2e && npm ci && node page.test.mjs
//
// Environment (every variable is required; a missing one fails its test with a message):
//   MEMWATCH_URL_OFFLINE      `memwatch view` of a recording: `/` requests, then only `/leak?kb=..`
//   MEMWATCH_LEAK_COUNT       how many `/leak` requests the leak phase made
//   MEMWATCH_LEAK_FROM_MS     start of the leak phase (epoch ms)
//   MEMWATCH_LEAK_TO_MS       end of the leak phase (epoch ms)
//   MEMWATCH_URL_LIVE         a live `memwatch serve` while load runs
//   MEMWATCH_URL_XSS          a view of a recording with requests to `/<img src=x onerror=alert(1)>`
//   MEMWATCH_URL_XSS_RETAINED a view of a recording whose route `/<img src=x onerror=alert(1)>`
//                             retains memory
//   MEMWATCH_URL_STACKS       a view of the call-site fixture recording
//                             (memwatch::recording::query::stacks::fixture)
//   MEMWATCH_URL_STACKS_XSS   the same with `leak_a` named `<img src=x onerror=alert(1)>`, its
//                             module `/srv/<script>window.__xss=1</script>`, and route /a in the
//                             call-site rollup renamed `/<img src=x onerror=alert(1)>`
//   MEMWATCH_SCREENSHOT_DIR   where offline.png, route.png, retained.png, live.png, xss.png and
//                             stacks.png are written
//   MEMWATCH_CHROMIUM         optional, the browser binary (default /usr/bin/chromium)
//
// The page exposes `window.memwatch` as a test hook (memwatch/assets/app.js).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const VIEWPORT = { width: 1280, height: 800 };
const TIMEOUT = 15_000;
// A request line cannot carry a raw space, so a client sends the spaces as %20: either form must
// appear, as text, in a route cell.
const XSS_ROUTE = '/<img src=x onerror=alert(1)>';
const XSS_FORMS = [XSS_ROUTE, XSS_ROUTE.replaceAll(' ', '%20')];
// A function and a module named by a hostile traced program (MEMWATCH_URL_STACKS_XSS).
const XSS_NAME = '<img src=x onerror=alert(1)>';
const XSS_MODULE = '/srv/<script>window.__xss=1</script>';

function env(name) {
  const v = process.env[name];
  assert.ok(v !== undefined && v !== '', `${name} is not set: see the header of tests/e2e/page.test.mjs`);
  return v;
}

function envInt(name) {
  const v = Number(env(name));
  assert.ok(Number.isFinite(v), `${name}=${JSON.stringify(process.env[name])} is not a number`);
  return v;
}

function shotPath(name) {
  const dir = env('MEMWATCH_SCREENSHOT_DIR');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

let browser;

before(async () => {
  const executablePath = process.env.MEMWATCH_CHROMIUM || '/usr/bin/chromium';
  assert.ok(fs.existsSync(executablePath), `no browser at ${executablePath}: apt-get install chromium, or set MEMWATCH_CHROMIUM`);
  // playwright-core gives the browser a fresh temporary profile of its own.
  browser = await chromium.launch({
    executablePath,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close();
});

/** A fresh page that records script errors, CSP violations and dialogs. */
async function openPage(url) {
  const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  const dialogs = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed loads are reported with their address by the 'response' handler below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    // The page closing its event stream is not a failure.
    if (!r.url().includes('/api/stream')) problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`);
  });
  page.on('dialog', async (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.memwatch && window.memwatch.chart && window.memwatch.state.summary);
  return { context, page, problems, dialogs };
}

/** Route rows of the table as [{route, method, requests}]. */
function routeRows(page) {
  return page.$$eval('#routes tbody tr.route-row', (rows) => rows.map((r) => ({
    route: r.dataset.route,
    method: r.dataset.method,
    requests: Number(r.querySelector('.requests').textContent.replace(/[^0-9]/g, '')),
  })));
}

async function idle(page) {
  await page.evaluate(() => window.memwatch.idle());
}

// Tests 1 and 2 share the offline page: 2 clicks a row of the table 1 selected.
let offline = null;

test('offline: dragging over the leak phase lists only /leak with every request', async () => {
  const url = env('MEMWATCH_URL_OFFLINE');
  const count = envInt('MEMWATCH_LEAK_COUNT');
  const from = envInt('MEMWATCH_LEAK_FROM_MS');
  const to = envInt('MEMWATCH_LEAK_TO_MS');
  assert.ok(to > from, 'MEMWATCH_LEAK_TO_MS must be after MEMWATCH_LEAK_FROM_MS');

  offline = await openPage(url);
  const { page } = offline;
  await idle(page);

  const over = page.locator('#chart .u-over');
  await over.waitFor({ state: 'visible' });
  const box = await over.boundingBox();
  assert.ok(box && box.width > 200, `the chart overlay is too small: ${JSON.stringify(box)}`);
  const [x0, x1] = await page.evaluate(([a, b]) => [window.memwatch.valToPos(a), window.memwatch.valToPos(b)], [from, to]);
  assert.ok(Number.isFinite(x0) && Number.isFinite(x1), `valToPos gave ${x0}, ${x1}`);
  assert.ok(x0 >= 0 && x1 <= box.width + 0.5, `the leak phase [${from}, ${to}] lies outside the chart (x ${x0}..${x1} of ${box.width})`);

  // Whole pixels just outside the phase, so that rounding never cuts its first or last request.
  const y = box.y + box.height / 2;
  await page.mouse.move(box.x + Math.floor(x0), y);
  await page.mouse.down();
  await page.mouse.move(box.x + (x0 + x1) / 2, y, { steps: 5 });
  await page.mouse.move(box.x + Math.ceil(x1), y, { steps: 5 });
  await page.mouse.up();

  await page.waitForFunction(() => window.memwatch.state.sel !== null);
  await idle(page);
  const { sel, msPerPx } = await page.evaluate(() => {
    const x = window.memwatch.chart.scales.x;
    return { sel: window.memwatch.state.sel, msPerPx: (x.max - x.min) / window.memwatch.chart.over.clientWidth };
  });
  const slack = 2 * msPerPx;
  assert.ok(sel.from <= from + slack && sel.to >= to - slack, `selection ${JSON.stringify(sel)} does not cover [${from}, ${to}]`);
  await page.waitForFunction(() => document.querySelectorAll('#routes tr.route-row').length > 0);

  const rows = await routeRows(page);
  assert.deepEqual(rows.map((r) => r.route), ['/leak'], `routes in the leak phase: ${JSON.stringify(rows)}`);
  assert.equal(rows[0].requests, count, `requests of /leak: ${JSON.stringify(rows)}`);
  const label = await page.textContent('#selection');
  assert.match(label, /\d\d:\d\d:\d\d/, `#selection shows the range: ${label}`);

  // Recorded without --stacks: the range panel says how to see call sites, and draws none.
  const flameNote = page.locator('#range-flame .flame-note');
  assert.ok(await flameNote.isVisible(), 'the call-site note is shown');
  assert.equal(await flameNote.textContent(),
    'No call sites in this recording: record with memwatch record --stacks to see which code kept the memory.');
  assert.equal(await page.locator('#range-flame .flame-node').count(), 0, 'no icicle without call sites');

  await page.mouse.move(box.x + (x0 + x1) / 2, box.y + box.height * 0.3);
  await page.screenshot({ path: shotPath('offline.png') });
  assert.deepEqual(offline.problems, [], 'no script errors or CSP violations');
});

test('offline: clicking /leak lists its requests and highlights them on the chart', async () => {
  assert.ok(offline, 'needs the page that the previous test left with the leak phase selected (it failed)');
  const count = envInt('MEMWATCH_LEAK_COUNT');
  const { page } = offline;
  const row = page.locator('#routes tr.route-row[data-route="/leak"]');
  await row.click();
  const limit = await page.evaluate(() => window.memwatch.requestLimit);
  const want = Math.min(count, limit);
  await page.waitForFunction((n) => document.querySelectorAll('#requests tr.request-row').length === n, want)
    .catch(async () => {
      const got = await page.locator('#requests tr.request-row').count();
      assert.fail(`#requests has ${got} rows, expected ${want}`);
    });
  await idle(page);
  assert.equal(await page.locator('#requests tr.request-row').count(), want);
  const targets = await page.$$eval('#requests tr.request-row .target-text', (c) => c.map((x) => x.textContent));
  assert.ok(targets.every((t) => t.startsWith('/leak')), `targets: ${targets.slice(0, 5)}`);
  assert.ok(await row.evaluate((r) => r.classList.contains('selected')), 'the clicked row is marked');
  const highlighted = await page.evaluate(() => window.memwatch.highlightCount);
  assert.ok(highlighted > 0, 'the chart highlights the route’s requests');
  assert.equal(highlighted, want, 'every listed request is drawn on the chart');

  // Each request says what it made resident and what it still keeps at the end of the range:
  // every /leak request keeps its 256 KiB (and perhaps a page of bookkeeping).
  const heads = await page.$$eval('#requests thead th', (c) => c.map((x) => x.textContent.trim()));
  assert.deepEqual(heads.slice(8, 12), ['Virtual', 'Faulted in', 'Made resident', 'Kept']);
  const cells = await page.$$eval('#requests tr.request-row', (rows) => rows.map((r) => [...r.cells].slice(9, 12).map((c) => c.textContent)));
  const listed = await page.evaluate(() => window.memwatch.state.requests.requests.map((q) => [q.rss_bytes, q.grown_bytes, q.retained_bytes]));
  assert.equal(cells.length, want);
  for (let i = 0; i < want; i++) {
    const [, grown, kept] = listed[i];
    assert.ok(kept >= 256 * 1024 && kept <= 256 * 1024 + 4096 && grown >= kept, `request ${i}: ${JSON.stringify(listed[i])}`);
    assert.equal(cells[i][2], kept === 256 * 1024 ? '256 KiB' : '260 KiB', `Kept cell of request ${i}: ${JSON.stringify(cells[i])}`);
  }

  await page.screenshot({ path: shotPath('route.png'), fullPage: true });
  assert.deepEqual(offline.problems, [], 'no script errors or CSP violations');
  await offline.context.close();
  offline = null;
});

test('memory axis: tick labels get the decimals that keep them apart', async () => {
  const { context, page, problems } = await openPage(env('MEMWATCH_URL_OFFLINE'));
  try {
    const labels = (splits) => page.evaluate((s) => window.memwatch.memTickLabels(s), splits);
    // Eleven ticks 0.01 MiB apart (RSS that barely moves): two decimals, none repeated.
    assert.deepEqual(
      await labels([21.2, 21.21, 21.22, 21.23, 21.24, 21.25, 21.26, 21.27, 21.28, 21.29, 21.3]),
      ['21.2 MiB', '21.21 MiB', '21.22 MiB', '21.23 MiB', '21.24 MiB', '21.25 MiB', '21.26 MiB',
        '21.27 MiB', '21.28 MiB', '21.29 MiB', '21.3 MiB']);
    // Steps of 0.005 MiB: three decimals.
    assert.deepEqual(await labels([21.2, 21.205, 21.21]), ['21.2 MiB', '21.205 MiB', '21.21 MiB']);
    // Ranges that need no more keep the usual labels.
    assert.deepEqual(await labels([0, 5, 10, 15]), ['0 KiB', '5 MiB', '10 MiB', '15 MiB']);
    assert.deepEqual(await labels([21, 21.5, 22]), ['21 MiB', '21.5 MiB', '22 MiB']);
    // Half-KiB steps below a MiB, and GiB half a MiB apart.
    assert.deepEqual(await labels([0.5, 0.5005, 0.501]), ['512 KiB', '512.5 KiB', '513 KiB']);
    assert.deepEqual(await labels([2048, 2048.5, 2049]), ['2 GiB', '2.0005 GiB', '2.001 GiB']);
    // A tick uPlot leaves without a value has no label.
    assert.deepEqual(await labels([null, 1.25, 1.26]), ['', '1.25 MiB', '1.26 MiB']);
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});

test('offline: "Retained by route" draws /leak first, with what it kept, and hides it again', async () => {
  const url = env('MEMWATCH_URL_OFFLINE');
  const count = envInt('MEMWATCH_LEAK_COUNT');
  const { context, page, problems } = await openPage(url);
  try {
    await idle(page);
    const toggle = page.getByRole('button', { name: 'Retained by route' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false', 'off by default');
    const legend = () => page.$$eval('#legend .u-series th', (c) => c.map((x) => x.textContent.trim()));
    const before = await legend();
    await toggle.click();
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    await page.waitForFunction(() => window.memwatch.state.retained !== null);
    await idle(page);

    const shown = await legend();
    const added = shown.slice(before.length);
    assert.equal(added[0], 'GET /leak', `the first retained series is /leak's: ${JSON.stringify(shown)}`);
    const leak = await page.evaluate(() => {
      const r = window.memwatch.state.retained;
      return { route: r.routes[0].route, last: r.routes[0].v[r.routes[0].v.length - 1], points: r.t.length };
    });
    assert.equal(leak.route, '/leak');
    assert.ok(leak.last >= count * 256 * 1024, `/leak retains ${leak.last} B at the end, at least ${count} × 256 KiB`);
    const series = await page.evaluate(() => window.memwatch.chart.series.length);
    assert.equal(series, shown.length, 'one chart series per legend entry');
    // The legend reads the latest values with the cursor off the chart.
    const values = await page.$$eval('#legend .u-series td', (c) => c.map((x) => x.textContent.trim()));
    assert.match(values[before.length], /MiB$/, `/leak's legend value: ${JSON.stringify(values)}`);
    await page.screenshot({ path: shotPath('retained.png') });

    await toggle.click();
    await idle(page);
    assert.deepEqual(await legend(), before, 'turned off, the chart has its own series only');
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});

test('live: the request count grows without reloading', async () => {
  const url = env('MEMWATCH_URL_LIVE');
  const { context, page, problems } = await openPage(url);
  try {
    assert.equal(await page.evaluate(() => window.memwatch.state.summary.live), true, 'summary.live is true');
    const read = async () => Number((await page.textContent('#request-count')).trim());
    const first = await read();
    assert.ok(Number.isInteger(first), '#request-count holds a number');
    const navigations = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    const grew = await page.waitForFunction(
      (n) => Number(document.getElementById('request-count').textContent.trim()) > n, first, { timeout: 5000 },
    ).then(() => true, () => false);
    const last = await read();
    assert.ok(grew, `#request-count stayed at ${first} for 5 s (now ${last})`);
    assert.deepEqual(navigations, [], 'the page did not reload');
    await idle(page);
    await page.screenshot({ path: shotPath('live.png') });
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});

test('xss: hostile routes and user agents are shown as text, never run', async () => {
  const url = env('MEMWATCH_URL_XSS');
  const { context, page, problems, dialogs } = await openPage(url);
  try {
    await page.evaluate(() => window.memwatch.clearSelection());
    await idle(page);
    await page.waitForFunction(() => document.querySelectorAll('#routes tr.route-row').length > 0);
    const cells = await page.$$eval('#routes tr.route-row td.route', (c) => c.map((x) => x.textContent));
    const form = XSS_FORMS.find((f) => cells.some((t) => t.includes(f)));
    assert.ok(form, `no .route cell shows ${XSS_FORMS.join(' or ')}: ${JSON.stringify(cells)}`);

    // Open the hostile route too, so its targets (and user agents) are rendered.
    await page.locator('#routes tr.route-row', { hasText: form }).first().click();
    await page.waitForFunction(() => document.querySelectorAll('#requests tr.request-row').length > 0);
    await idle(page);
    await page.waitForTimeout(500); // an injected <img onerror> would have fired by now

    const dom = await page.evaluate(() => ({
      imgOnerror: document.querySelectorAll('img[onerror], [onerror], [onload]').length,
      imgs: document.querySelectorAll('img').length,
      scripts: Array.from(document.scripts).map((s) => s.getAttribute('src')),
      xss: typeof window.__xss,
    }));
    assert.equal(dom.imgOnerror, 0, 'no element with onerror/onload in the DOM');
    assert.equal(dom.imgs, 0, 'no img element at all');
    assert.deepEqual(dom.scripts, ['/assets/vendor/uPlot.iife.min.js', '/assets/app.js'], 'only the page’s own scripts');
    assert.equal(dom.xss, 'undefined', 'window.__xss is undefined');

    // An access log alone has no retained-memory figures: the toggle says so and draws nothing.
    await page.getByRole('button', { name: 'Retained by route' }).click();
    await page.waitForFunction(() => window.memwatch.state.retained !== null);
    await idle(page);
    const note = page.locator('#retained-note');
    assert.ok(await note.isVisible(), 'the note under the chart is shown');
    assert.match(await note.textContent(), /no retained-memory figures/i);
    assert.equal(await page.evaluate(() => window.memwatch.chart.series.length), 3, 'no series added');
    assert.deepEqual(dialogs, [], 'no dialog was opened');
    await page.screenshot({ path: shotPath('xss.png'), fullPage: true });
    assert.deepEqual(problems, [], 'no script errors, and no CSP violation (an injected script would cause one)');
  } finally {
    await context.close();
  }
});

test('xss: a hostile route in the retained-memory legend is shown as text, never run', async () => {
  const url = env('MEMWATCH_URL_XSS_RETAINED');
  const { context, page, problems, dialogs } = await openPage(url);
  try {
    await idle(page);
    await page.getByRole('button', { name: 'Retained by route' }).click();
    await page.waitForFunction(() => window.memwatch.state.retained !== null);
    await idle(page);
    const labels = await page.$$eval('#legend .u-series th', (c) => c.map((x) => x.textContent.trim()));
    assert.ok(labels.includes(`GET ${XSS_ROUTE}`), `the legend shows the route as text: ${JSON.stringify(labels)}`);
    await page.waitForTimeout(500); // an injected <img onerror> would have fired by now
    const dom = await page.evaluate(() => ({
      handlers: document.querySelectorAll('[onerror], [onload]').length,
      imgs: document.querySelectorAll('img').length,
    }));
    assert.deepEqual(dom, { handlers: 0, imgs: 0 }, 'no element made from the route');
    assert.deepEqual(dialogs, [], 'no dialog was opened');
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});

/** The drawn frames of the icicle in `host`: [{name, depth, leaf, x, width}], in DOM order. */
function frames(page, host) {
  return page.$$eval(`${host} .flame-node`, (nodes) => nodes.map((n) => {
    const r = n.getBoundingClientRect();
    return {
      name: n.textContent,
      depth: Number(n.dataset.depth),
      leaf: n.classList.contains('leaf'),
      x: r.x,
      width: r.width,
    };
  }));
}

/** Route and retained cells of the list a click on a frame of `host` opened. */
function clickedRoutes(page, host) {
  return page.$$eval(`${host} .flame-detail tr.flame-route`, (rows) => rows.map((r) => [
    r.cells[0].textContent, r.cells[1].textContent,
  ]));
}

test('call sites: the icicle of retained memory draws the fixture, and a click lists the routes', async () => {
  const url = env('MEMWATCH_URL_STACKS');
  const { context, page, problems } = await openPage(url);
  try {
    await page.waitForFunction(() => window.memwatch.state.stacks !== null);
    await idle(page);

    // The whole recording, every route: B+2's release counts, so libfoo.so's 64 KiB are gone.
    const all = await frames(page, '#range-flame');
    assert.deepEqual(all.map((f) => [f.depth, f.name]), [
      [0, 'all routes'], [1, 'main'], [2, 'handle'], [3, 'leak_a'], [3, 'leak_b'], [1, '[no stack taken]'],
    ]);
    assert.match(await page.textContent('#range-flame .flame-head .meta'), /^636 KiB retained of 900 KiB made resident/);
    // Clicking leak_a lists /a and the memory made outside requests, most retained first.
    await page.locator('#range-flame .flame-node', { hasText: 'leak_a' }).click();
    assert.deepEqual(await clickedRoutes(page, '#range-flame'), [['GET /a', '512 KiB'], ['outside requests', '16 KiB']]);

    // The route /a: the widest leaf is leak_a; widths are proportional to retained bytes.
    await page.locator('#routes tr.route-row[data-route="/a"]').click();
    await page.waitForFunction(() => window.memwatch.state.routeStacks !== null);
    await idle(page);
    const route = await frames(page, '#route-flame');
    assert.deepEqual(route.map((f) => [f.depth, f.name]), [
      [0, 'GET /a'], [1, 'main'], [2, 'handle'], [3, 'leak_a'], [1, '[no stack taken]'],
    ]);
    const leaves = route.filter((f) => f.leaf).sort((a, b) => b.width - a.width);
    assert.equal(leaves[0].name, 'leak_a', `leaves, widest first: ${JSON.stringify(leaves)}`);
    const [top, , , leakA, none] = route;
    assert.ok(Math.abs(leakA.width - (top.width * 512) / 520) <= 1, `leak_a ${leakA.width} px of ${top.width}`);
    assert.ok(Math.abs(none.width - (top.width * 8) / 520) <= 1, `[no stack taken] ${none.width} px of ${top.width}`);
    assert.ok(Math.abs(none.x - (leakA.x + leakA.width)) <= 1, 'stack 0 sits right of main');

    // Hovering shows name, module, retained and grown bytes.
    const leak = page.locator('#route-flame .flame-node', { hasText: 'leak_a' });
    await leak.hover();
    const tip = page.locator('#route-flame .flame-tip');
    await tip.waitFor({ state: 'visible' });
    assert.deepEqual(await tip.locator('div').allTextContents(), ['leak_a', '/srv/app', 'retained 512 KiB (98.5%) · grown 512 KiB']);

    // Clicking it lists the routes that reached it.
    await leak.click();
    assert.deepEqual(await clickedRoutes(page, '#route-flame'), [['GET /a', '512 KiB']]);
    assert.ok(await leak.evaluate((n) => n.classList.contains('selected')), 'the clicked frame is marked');
    await page.screenshot({ path: shotPath('stacks.png'), fullPage: true });
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});

test('xss: hostile function names, modules and routes in the icicle are shown as text, never run', async () => {
  const url = env('MEMWATCH_URL_STACKS_XSS');
  const { context, page, problems, dialogs } = await openPage(url);
  try {
    await page.waitForFunction(() => window.memwatch.state.stacks !== null);
    await idle(page);
    const names = (await frames(page, '#range-flame')).map((f) => f.name);
    assert.ok(names.includes(XSS_NAME), `a frame shows the function as text: ${JSON.stringify(names)}`);
    const hostile = page.locator('#range-flame .flame-node', { hasText: XSS_NAME });
    await hostile.hover();
    const tip = page.locator('#range-flame .flame-tip');
    await tip.waitFor({ state: 'visible' });
    assert.deepEqual((await tip.locator('div').allTextContents()).slice(0, 2), [XSS_NAME, XSS_MODULE]);
    await hostile.click();
    const routes = await clickedRoutes(page, '#range-flame');
    assert.deepEqual(routes.map((r) => r[0]), [`GET ${XSS_ROUTE}`, 'outside requests']);
    await page.waitForTimeout(500); // an injected <img onerror> would have fired by now
    const dom = await page.evaluate(() => ({
      handlers: document.querySelectorAll('[onerror], [onload]').length,
      imgs: document.querySelectorAll('img').length,
      scripts: document.scripts.length,
      xss: typeof window.__xss,
    }));
    assert.deepEqual(dom, { handlers: 0, imgs: 0, scripts: 2, xss: 'undefined' }, 'no element made from the names');
    assert.deepEqual(dialogs, [], 'no dialog was opened');
    assert.deepEqual(problems, [], 'no script errors or CSP violations');
  } finally {
    await context.close();
  }
});
