import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bundleCli } from '../../lib/local/cli-bundle';
import { CLI_WORKER } from '../../lib/local/worker-process';

/**
 * The CLI and the worker as they ship (`npm run build`'s bundle, the Dockerfile's esbuild line),
 * built once per test run by the globalSetup: a test that runs Tidemark as its own process runs
 * what users and ECS run, and does not pay tsx's start (~0.5 CPU-s for the CLI, ~1 for the worker)
 * every time. They live under node_modules/.cache so the bundles' external packages (the AWS SDK,
 * aws-cdk-lib) resolve from the repository's node_modules.
 */
const ROOT = resolve(__dirname, '../..');
const CLI_ENV = 'TIDEMARK_TEST_CLI';
const WORKER_ENV = 'TIDEMARK_TEST_WORKER';

/** Builds both into a folder of this run; sets the variables every jest worker inherits. Returns the folder. */
export function buildTestBundles(): string {
  const dir = join(ROOT, 'node_modules/.cache/tidemark-test-bundles', String(process.pid));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // The CLI's folder holds the worker too, built by the Dockerfile's esbuild line (cli-bundle.ts).
  process.env[CLI_ENV] = bundleCli(ROOT, join(dir, 'cli'));
  process.env[WORKER_ENV] = join(dir, 'cli', CLI_WORKER);
  return dir;
}

function built(variable: string): string {
  const path = process.env[variable];
  if (!path) throw new Error(`${variable} is not set: jest's globalSetup (test/harness/secret-scan-setup.ts) builds the bundles`);
  return path;
}

/** The launcher of the bundled CLI (`node <this> <args>`). */
export const testCli = (): string => built(CLI_ENV);

/** The bundled worker (`node <this> <args>`), as containers/worker/Dockerfile builds it. */
export const testWorker = (): string => built(WORKER_ENV);

let node22Path: string | undefined;

/**
 * A Node 22 binary (scripts/node22.sh: $TIDEMARK_NODE22, or the npm registry's, installed by
 * scripts/setup.sh), for the paths only Node 22 takes: the worker image's and the Lambdas' runtime.
 */
export function node22(): string {
  node22Path ??= execFileSync('bash', [join(ROOT, 'scripts/node22.sh')], { encoding: 'utf8' }).trim();
  return node22Path;
}
