// Unit tests of memwatch/assets/flame.js: where the icicle's frames go, and what they are called.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLAME_MIN_PX, flameColor, flameKey, layoutFlame, routeName } from '../../../memwatch/assets/flame.js';

const node = (name, retained, children = [], module = '/srv/app') => ({
  name, module, retained_bytes: retained, grown_bytes: retained, routes: [], routes_folded: 0, children,
});

/** main (60) → handle (60) → leak (59), rare (1); [no stack taken] (40): 100 retained in all. */
const tree = () => {
  const root = node('all routes', 100, [
    node('main', 60, [node('handle', 60, [node('leak', 59), node('rare', 1)])]),
    node('[no stack taken]', 40, [], null),
  ], undefined);
  root.root = true;
  return root;
};

test('frames are as wide as their share, callees under their caller from its left edge, callers first', () => {
  const { boxes, depth } = layoutFlame(tree(), 1000);
  assert.deepEqual(boxes.map((b) => [b.node.name, b.level, b.x, b.w, b.leaf]), [
    ['all routes', 0, 0, 1, false],
    ['main', 1, 0, 0.6, false],
    ['handle', 2, 0, 0.6, false],
    ['leak', 3, 0, 0.59, true],
    ['rare', 3, 0.59, 0.01, true],
    ['[no stack taken]', 1, 0.6, 0.4, true],
  ]);
  assert.equal(depth, 3);
  assert.deepEqual(boxes[3].path.map((n) => n.name), ['all routes', 'main', 'handle', 'leak']);
});

test('a frame narrower than half a pixel is left out, and its caller becomes a leaf', () => {
  // At 40 px, rare is 0.4 px wide.
  assert.ok(0.01 * 40 < FLAME_MIN_PX);
  const { boxes } = layoutFlame(tree(), 40);
  assert.deepEqual(boxes.map((b) => b.node.name), ['all routes', 'main', 'handle', 'leak', '[no stack taken]']);
  // Left out, its bytes still push its siblings to the right: the next frame starts after them.
  const t = tree();
  t.children[0].children[0].children.reverse();
  const after = layoutFlame(t, 40).boxes.find((b) => b.node.name === 'leak');
  assert.equal(after.x, 0.01);
  // A caller all of whose callees are too narrow is a leaf.
  const thin = node('all routes', 1000, [node('f', 999, [node('g', 1)])], undefined);
  assert.deepEqual(layoutFlame(thin, 100).boxes.map((b) => [b.node.name, b.leaf]), [['all routes', false], ['f', true]]);
});

test('a frame is known across answers by the names and modules on its path', () => {
  const { boxes } = layoutFlame(tree(), 1000);
  const leak = boxes[3];
  assert.equal(flameKey(leak.path.slice(1)), '[["main","/srv/app"],["handle","/srv/app"],["leak","/srv/app"]]');
  const again = layoutFlame(tree(), 500).boxes.find((b) => flameKey(b.path.slice(1)) === flameKey(leak.path.slice(1)));
  assert.equal(again.node.name, 'leak');
});

test('colours: warm and stable per name, grey for the placeholders', () => {
  assert.equal(flameColor({ name: '[no stack taken]', module: null }), '#ced4da');
  assert.equal(flameColor({ name: 'x' }), '#ced4da');
  const c = flameColor({ name: 'leak_a', module: '/srv/app' });
  assert.equal(c, flameColor({ name: 'leak_a', module: '/other' }));
  const [, h, s, l] = c.match(/^hsl\((\d+), (\d+)%, (\d+)%\)$/).map(Number);
  assert.ok(h >= 6 && h <= 50 && s >= 78 && s <= 92 && l >= 66 && l <= 80, c);
  assert.notEqual(c, flameColor({ name: 'handle', module: '/srv/app' }));
});

test('route names: the method and route, or what route "" stands for', () => {
  assert.equal(routeName({ method: 'GET', route: '/a' }), 'GET /a');
  assert.equal(routeName({ method: '-', route: '' }), 'outside requests');
  assert.equal(routeName({ method: null, route: null }), ' ');
});
