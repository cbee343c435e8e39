/**
 * `npx tsx scripts/sigterm-loop.ts [runs=60]`
 *
 * Issue 11's SIGTERM promise, many times over: the bundled CLI backs up a throwaway PostgreSQL
 * (pgbench scale 1 and 10 MB of TOAST) into a temp folder and gets SIGTERM at a random moment
 * between 0.4 and 1.8 s (start-up, the key check, the dump, the upload, the commit). Every run must
 * exit 0 (it finished first) or 130 (it stopped), or die of the signal itself before its handler
 * existed; anything else is printed with the CLI's stderr, and the loop exits 1. The kill tests
 * (test/faults) try one moment in CI and six under the soak; this found an uncaught error in 1 of 60.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { bundleCli } from '../lib/local/cli-bundle';
import { loadSampleData } from '../lib/local/sample-postgres';
import { startThrowawayPostgres } from '../lib/local/throwaway-postgres';

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 60);
  const root = resolve(__dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-sigterm-'));
  const bundleDir = join(root, 'node_modules/.cache/tidemark-sigterm-loop', String(process.pid));
  const cli = bundleCli(root, bundleDir);
  const pg = await startThrowawayPostgres({ databases: ['app'] });
  const exits: Record<string, number> = {};
  let bad = 0;
  try {
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 10 });
    const config = join(dir, 'tidemark.yaml');
    writeFileSync(config, `repository: file://${dir}/repo\nencryption: { key: env:TIDEMARK_LOOP_KEY }\nsources:\n  app: { engine: postgres, url: "${pg.url('app')}" }\n`);
    const env = { ...process.env, TIDEMARK_LOOP_KEY: `sigterm-loop-${Math.random().toString(36).slice(2)}-0123456789abcdef` };
    for (let i = 0; i < runs; i++) {
      const ms = 400 + Math.random() * 1400;
      const child = spawn(process.execPath, [cli, 'backup', 'app', '--type', 'logical', '--config', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const exited = new Promise<string>((r) => child.on('close', (code, signal) => r(String(code ?? signal))));
      setTimeout(() => child.kill('SIGTERM'), ms);
      const exit = await exited;
      exits[exit] = (exits[exit] ?? 0) + 1;
      if (!['0', '130', 'SIGTERM'].includes(exit)) {
        bad++;
        process.stdout.write(`run ${i} at ${Math.round(ms)} ms: exit ${exit}\n${stderr}\n`);
      }
    }
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(bundleDir, { recursive: true, force: true });
  }
  process.stdout.write(`${runs} SIGTERMs, exits: ${JSON.stringify(exits)}${bad ? `, ${bad} bad` : ''}\n`);
  process.exitCode = bad ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
