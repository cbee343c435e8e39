/**
 * Two builds of the CLI restoring the same physical full backup, interleaved (who goes first
 * alternates by round): for a change to the restore path, measured against the commit before it.
 *
 *   npx tsx bench/restore-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 7]
 *
 * Bundle each side with lib/local/cli-bundle.ts (`bundleCli(checkout, outDir)`; a `git worktree` of
 * the old commit gives the old one). A throwaway cluster gets pgbench data at --scale; the new CLI
 * takes the backup into a folder repository; each round restores it into a fresh directory with
 * each CLI (page cache warm, `sync` before each). Prints each side's times and medians and the
 * per-round ratios.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { startThrowawayPostgres } from '../lib/local/throwaway-postgres';

const median = (a: readonly number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '7' } } });
  if (positionals.length !== 2) throw new Error('usage: npx tsx bench/restore-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 7]');
  const clis = { old: positionals[0], new: positionals[1] };
  process.env.TIDEMARK_BENCH_KEY = 'restore-ab-bench-key-0123456789abcdef';
  const work = mkdtempSync(join(tmpdir(), 'tidemark-restore-ab-'));
  chmodSync(work, 0o755);
  const pg = await startThrowawayPostgres({ settings: { wal_level: 'replica', max_wal_size: '4GB' } });
  try {
    await pg.createDatabase('app');
    execFileSync(pgBin('pgbench'), ['-i', '-q', '-s', values.scale!, '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', 'app'], { stdio: 'ignore' });
    const config = join(work, 'tidemark.yaml');
    writeFileSync(config, `repository: file://${join(work, 'repo')}\nencryption: { key: env:TIDEMARK_BENCH_KEY }\nsources:\n  app: { engine: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/app" }\n`);
    execFileSync(process.execPath, [clis.new, 'backup', 'app', '--type', 'full', '--config', config], { stdio: 'ignore' });
    const times: Record<keyof typeof clis, number[]> = { old: [], new: [] };
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const side of round % 2 ? (['new', 'old'] as const) : (['old', 'new'] as const)) {
        const dir = join(work, `restored-${side}`);
        execFileSync('sync');
        const started = process.hrtime.bigint();
        const run = spawnSync(process.execPath, [clis[side], 'restore', 'app', '--to', dir, '--config', config], { encoding: 'utf8' });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (run.status !== 0) throw new Error(`${side}: ${run.stderr}`);
        times[side].push(seconds);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    for (const side of ['old', 'new'] as const) console.log(`${side}: ${times[side].map((s) => s.toFixed(2)).join(' ')} s, median ${median(times[side]).toFixed(2)} s`);
    console.log(`new/old per round ${times.new.map((s, i) => (s / times.old[i]).toFixed(2)).join(' ')}; medians ${(median(times.new) / median(times.old)).toFixed(3)}`);
  } finally {
    await pg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exitCode = 1;
});
