// Lint: typescript-eslint's recommended rules plus the import directions of DESIGN.md §2.
import tseslint from 'typescript-eslint';

const runtimeOnly = ['**/lib/local/**', '**/lambda/**', '**/containers/**', '**/bin/**'];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'cdk.out/', 'coverage/', '**/*.js', '**/*.mjs', 'bench/.work/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The engine is runtime-neutral: it never knows about CDK or about who runs it.
    files: ['lib/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'], message: 'lib/core is runtime code: it never imports aws-cdk-lib.' },
          { group: ['**/lib/infra/**', '../infra/**', '../../infra/**', ...runtimeOnly, '../local/**', '../../local/**', 'aws-local-stepfunctions'], message: 'lib/core imports nothing above it (infra, local, handlers, CLI).' },
        ],
      }],
    },
  },
  {
    // Infrastructure describes resources; it references handlers and containers only as asset paths.
    files: ['lib/infra/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          {
            group: ['**/lib/core/**', '../core/**', '../../core/**', '!**/core/config', '!**/core/config/**'],
            message: 'lib/infra may import only lib/core/config from the engine.',
          },
          { group: [...runtimeOnly, '../local/**', 'aws-local-stepfunctions', 'pg', 'mysql2'], message: 'lib/infra never imports runtime code.' },
        ],
      }],
    },
  },
  {
    files: ['lambda/**/*.ts', 'containers/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', '**/lib/infra/**', '**/lib/local/**'], message: 'handlers and the worker call lib/core only.' }],
      }],
    },
  },
);
