// Workflow code runs in Temporal's deterministic sandbox: no Node builtins, no
// SDK client/worker/activity modules, no I/O libraries. Activities are imported by type only.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert',
  'buffer',
  'child_process',
  'crypto',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'https',
  'net',
  'os',
  'path',
  'process',
  'stream',
  'timers',
  'url',
  'util',
  'worker_threads',
  'zlib',
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', '.runbook/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Type-aware: a forgotten `await` on an activity or a checkpoint is a silent bug.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false, attributes: false } }],
    },
  },
  {
    files: ['src/workflows/**/*.ts', 'test/fixtures/*-runbook.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflow code is deterministic: move I/O to an activity' })),
          patterns: [
            { group: ['node:*'], message: 'workflow code is deterministic: move I/O to an activity' },
            {
              group: ['@temporalio/client', '@temporalio/worker', '@temporalio/testing', '@temporalio/activity'],
              message: 'workflows import only @temporalio/workflow and @temporalio/common',
            },
            { group: ['@aws-sdk/*', 'pg', 'execa', 'yaml', 'zod', 'p-limit'], message: 'workflows call activities for I/O' },
            { group: ['**/activities/*', '**/*-activities.js'], allowTypeImports: true, message: 'import activities by type only' },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
