import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../lib/core/config/load';
import { markSecretVariables } from '../../lib/core/secrets';
import type { TidemarkConfig, TidemarkConfigInput } from '../../lib/core/config/schema';
import { testCli } from './bundles';
import { scanRepositories, scanText } from './secret-scan';

export const ROOT = resolve(__dirname, '../..');
export const TEST_KEY = 'tidemark-test-key-0123456789abcdefghijklmnop';
process.env.TIDEMARK_TEST_KEY = TEST_KEY;
// As a loaded config would (every test config names it): no tool or server started here inherits it.
markSecretVariables(['env:TIDEMARK_TEST_KEY']);

/** A temp folder for this test file, removed afterwards. */
export function useTempDir(prefix = 'tidemark-test-'): { readonly path: string } {
  let path = '';
  beforeAll(() => {
    path = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    scanRepositories(path, 'a temp repository (useTempDir)');
    rmSync(path, { recursive: true, force: true });
  });
  return {
    get path() {
      return path;
    },
  };
}

/** Writes a config file and returns its path and, lazily, its parsed form (invalid configs are for CLI tests). */
export function writeConfig(dir: string, name: string, config: TidemarkConfigInput): { path: string; config: TidemarkConfig } {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return {
    path,
    get config() {
      return parseConfig(stringify(config), path);
    },
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** The CLI as users run it: its own process (the bundle `npm run build` makes), stdout and stderr apart. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT, node = process.execPath): ChildProcess {
  return spawn(node, [testCli(), ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The bundled CLI run to its end; `cwd` is the repository unless given (an installed CLI runs anywhere); `node` runs it (Node 22: node22()). */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT, node = process.execPath): Promise<CliResult> {
  const started = Date.now();
  const child = spawnCli(args, env, cwd, node);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  scanText(`the output of tidemark ${args[0] ?? ''}… (runCli)`, `${stdout}\n${stderr}`);
  return { code, stdout, stderr, seconds: (Date.now() - started) / 1000 };
}

/**
 * Resolves once some backup under `backupsDir` (<repo>/<source>/backups) has an upload in flight
 * (a FileStore `.tmp-` file) of at least `minBytes`: the moment to kill a backup mid-stream.
 * Returns false if that never happens within `timeoutMs`.
 */
export async function waitForUploadInFlight(backupsDir: string, { minBytes = 256 * 1024, timeoutMs = 30_000 } = {}): Promise<boolean> {
  const inFlight = () => {
    try {
      return readdirSync(backupsDir).some((id) =>
        readdirSync(join(backupsDir, id)).some((f) => f.startsWith('.tmp-') && statSync(join(backupsDir, id, f)).size >= minBytes),
      );
    } catch {
      return false; // the folders appear only once the backup has begun
    }
  };
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    if (inFlight()) return true;
  }
  return inFlight();
}
