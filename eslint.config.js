// Lint bans what STYLE.md bans: import cycles, deep imports into another package's src/,
// and floating promises. Type-aware rules run on the TypeScript sources.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'native/**', 'infra/**', 'bench/out/**', 'data/**', '.cache/**'] },
  { linterOptions: { reportUnusedDisableDirectives: 'off' } },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'import-x/no-cycle': ['error', { maxDepth: 10 }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@cordon/*/src/*', '@cordon/*/dist/*'], message: 'Import the package, not its internals.' },
            {
              group: ['../../packages/*', '../../services/*', '../../../packages/*', '../../../services/*'],
              message: 'Import another package by its name (@cordon/…), not by path.',
            },
          ],
        },
      ],
    },
  },
);
