import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildSync, type BuildOptions } from 'esbuild';
import { DATA_NODE_FLAGS } from './node-flags';
import { bundleWorkerLikeDockerfile } from './worker-bundle';
import { CLI_WORKER } from './worker-process';

/**
 * The installed CLI, as `npm run build` makes it (scripts/bundle-cli.ts) and as the CLI test and the
 * benchmark run it: three files in one folder.
 *
 * - `tidemark-cli.js`: bin/tidemark.ts and what it imports, bundled by esbuild into one file. Node
 *   then reads, parses and resolves one file instead of a few hundred; the commands' modules stay
 *   lazy inside it (esbuild keeps `await import()` as a deferred init).
 * - `tidemark.js`, what package.json's `bin` names: it turns on Node's on-disk compile cache
 *   (Node ≥ 22.1; a no-op on 20) and then runs the bundle. The cache has to be on before the bundle
 *   is parsed, which the bundle cannot do for itself.
 * - `tidemark-worker.js`: the worker as the image's Dockerfile bundles it, which the local runtime
 *   starts for `tidemark drill` and the local backup machine (worker-process.ts): an installed CLI
 *   then needs no repository checkout and no tsx, and each task starts as fast as in the image.
 *
 * The AWS SDK and the CDK stay outside the bundle (a dependency in node_modules, as npm installs it): it is
 * only used with an s3:// repository or a KMS key, and with it inside, parsing 2 MB more on every
 * start moved pg_dump's spawn ~35 ms later on Node 20 and ~50 ms on Node 22 without the cache (by
 * hand, 15 interleaved runs each on a shared 2-core machine), most of what the bundle saves.
 */
export const CLI_LAUNCHER = 'tidemark.js';
export const CLI_BUNDLE = 'tidemark-cli.js';

/** esbuild's options for the bundle; `outfile` is added per call. */
export const CLI_BUNDLE_OPTIONS: BuildOptions = {
  entryPoints: ['bin/tidemark.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  // package.json's engines.
  target: 'node20',
  // pg-native is pg's optional native binding, never installed: pg falls back to JS.
  // aws-cdk-lib (with constructs and cdk-nag) is what `tidemark drill` synthesizes the stack with:
  // inside the bundle it made the file 67 MB, and parsing that cost every command ~0.5 s and
  // ~150 MiB of RSS (measured 2026-12-01: `--help` 0.62 s, 239 MiB). Outside, only `drill` loads it.
  external: ['pg-native', '@aws-sdk/*', 'aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'],
  // Whitespace and comments out, names kept: 3.6 MB became 2.4 MB, and ASCII only (comments with
  // non-ASCII characters had made V8 hold the whole source as two-byte text); each start ~0.05 s
  // sooner (`tidemark help`, 8,400 → 6,600 page faults, 2026-12-02, Node 20 and 22).
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  // For a bug's stack trace: NODE_OPTIONS=--enable-source-maps maps it back to the TypeScript.
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
};

// `main` is what bin/tidemark.ts runs when it is the main module; loaded from here, it is not.
// The shebang starts node with DATA_NODE_FLAGS (`env -S` splits them): `node tidemark.js` does not
// read it, so whoever starts the CLI that way passes them (the benchmarks do).
// The compile cache lives in the OS temp dir (or $NODE_COMPILE_CACHE); NODE_DISABLE_COMPILE_CACHE=1 turns it off.
const LAUNCHER = `#!/usr/bin/env -S node ${DATA_NODE_FLAGS.join(' ')}
// The tidemark CLI: written by lib/local/cli-bundle.ts (npm run build); the code is in ${CLI_BUNDLE}.
'use strict';
require('node:module').enableCompileCache?.();
require('./${CLI_BUNDLE}').main(process.argv).then((code) => process.exit(code));
`;

/** Builds the launcher, the bundle and the worker into `outDir` (relative to `root`, the repository); returns the launcher's path. */
export function bundleCli(root: string, outDir: string): string {
  const dir = resolve(root, outDir);
  mkdirSync(dir, { recursive: true });
  buildSync({ ...CLI_BUNDLE_OPTIONS, absWorkingDir: root, outfile: join(dir, CLI_BUNDLE) });
  bundleWorkerLikeDockerfile(root, join(dir, CLI_WORKER));
  const launcher = join(dir, CLI_LAUNCHER);
  writeFileSync(launcher, LAUNCHER);
  chmodSync(launcher, 0o755);
  return launcher;
}
