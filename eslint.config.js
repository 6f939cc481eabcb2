// Lint: the recommended JS and TypeScript rules (syntax-level, no type
// information, so it stays fast on a 2-core machine). Layering is checked by
// test/layers.test.ts against the README's source map; formatting is Prettier's
// (eslint-config-prettier turns off the rules that would disagree with it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: globals.node },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      'no-control-regex': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
      'max-len': [
        'error',
        {
          code: 200,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreRegExpLiterals: true,
          ignoreComments: false,
        },
      ],
    },
  },
  // Node's global `performance` is a getter run on every use (≈ 0.5% of a
  // lookup worker's samples under wrk): the server imports it instead.
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'performance', message: "import { performance } from 'node:perf_hooks' (the global is a getter)" },
      ],
    },
  },
  // Browser code: the on-page snippets and the Prebid module.
  { files: ['examples/**/*.js', 'integrations/**/*.js'], languageOptions: { globals: globals.browser } },
);
