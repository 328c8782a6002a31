// The lint of the page's modules (memwatch/assets) and of their tests, run from the workspace
// root, which the patterns below are relative to (`cargo xtask test` runs it):
//
//   tests/e2e/node_modules/.bin/eslint -c tests/e2e/eslint.config.js memwatch/assets tests/e2e
//
// ESLint's recommended rules, and a few that keep the code's own habits: `==` only against
// null, `const` where nothing is reassigned.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['**/node_modules/**', 'memwatch/assets/vendor/**'] },
  js.configs.recommended,
  {
    files: ['memwatch/assets/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      // uPlot: the global its vendored build defines, loaded before the modules.
      globals: { ...globals.browser, uPlot: 'readonly' },
    },
  },
  {
    // Node.js runs these; the browser test's callbacks run in the page.
    files: ['tests/e2e/**/*.js', 'tests/e2e/**/*.mjs'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.node, ...globals.browser } },
  },
  {
    rules: {
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
];
