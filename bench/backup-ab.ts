/**
 * Two builds of the CLI taking full physical backups of the same cluster, interleaved with the
 * compressed floor (`pg_basebackup -Ft -Xnone -D - | zstd -T0 -3 > file`): for a change to the
 * backup path, measured against the commit before it.
 *
 *   npx tsx bench/backup-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 5] [--node <binary>]
 *
 * Bundle each side with lib/local/cli-bundle.ts (`bundleCli(checkout, outDir)`; a `git worktree` of
 * the old commit gives the old one). `--node` runs both CLIs on that binary (scripts/node22.sh for
 * the worker's runtime). A throwaway cluster with data checksums gets pgbench data at --scale; each
 * round runs the three in a rotating order after CHECKPOINT and sync, each backup into a fresh
 * folder repository. Prints wall seconds and the CPU seconds of each process tree (user + system of
 * node and its children, from /usr/bin/time; the server's share is not in it), medians, and the
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
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '5' }, node: { type: 'string', default: process.execPath } },
  });
  if (positionals.length !== 2) throw new Error('usage: npx tsx bench/backup-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 5] [--node <binary>]');
  const node = values.node!;
  process.env.TIDEMARK_BENCH_KEY = 'backup-ab-bench-key-0123456789abcdef';
  const work = mkdtempSync(join(tmpdir(), 'tidemark-backup-ab-'));
  chmodSync(work, 0o755);
  const pg = await startThrowawayPostgres({ dataChecksums: true, settings: { wal_level: 'replica', max_wal_size: '4GB' } });
  try {
    await pg.createDatabase('app');
    const conn = ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres'];
    execFileSync(pgBin('pgbench'), ['-i', '-q', '-s', values.scale!, ...conn, 'app'], { stdio: 'ignore' });
    const config = join(work, 'tidemark.yaml');
    writeFileSync(config, `repository: file://${join(work, 'repo')}\nencryption: { key: env:TIDEMARK_BENCH_KEY }\nsources:\n  app: { engine: postgres, url: "postgres://postgres@127.0.0.1:${pg.port}/app" }\n`);
    const floor = `${pgBin('pg_basebackup')} ${conn.join(' ')} -Ft -Xnone --checkpoint=fast -D - | zstd -q -T0 -3 > ${join(work, 'floor.tar.zst')}`;
    const commands: Record<string, string[]> = {
      old: [node, positionals[0], 'backup', 'app', '--type', 'full', '--config', config],
      new: [node, positionals[1], 'backup', 'app', '--type', 'full', '--config', config],
      floor: ['bash', '-c', floor],
    };
    const sides = Object.keys(commands);
    const wall: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(sides.map((s) => [s, []]));
    for (let round = 0; round < Number(values.rounds); round++) {
      for (let i = 0; i < sides.length; i++) {
        const side = sides[(i + round) % sides.length];
        rmSync(join(work, 'repo'), { recursive: true, force: true });
        rmSync(join(work, 'floor.tar.zst'), { force: true });
        execFileSync(pgBin('psql'), [...conn, '-qAtc', 'checkpoint', 'app']);
        execFileSync('sync');
        const started = process.hrtime.bigint();
        const run = spawnSync('/usr/bin/time', ['-f', 'TIME %U %S', ...commands[side]], { encoding: 'utf8' });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (run.status !== 0) throw new Error(`${side}: ${run.stderr}`);
        const [, user, sys] = /TIME ([\d.]+) ([\d.]+)/.exec(run.stderr)!;
        wall[side].push(seconds);
        cpu[side].push(Number(user) + Number(sys));
      }
    }
    for (const side of sides) {
      console.log(`${side}: wall ${wall[side].map((s) => s.toFixed(2)).join(' ')} s, median ${median(wall[side]).toFixed(2)} s; cpu median ${median(cpu[side]).toFixed(2)} s`);
    }
    const ratio = (a: string, b: string) =>
      `${a}/${b} per round ${wall[a].map((s, i) => (s / wall[b][i]).toFixed(2)).join(' ')}; medians ${(median(wall[a]) / median(wall[b])).toFixed(3)}`;
    console.log(ratio('new', 'old'));
    console.log(ratio('old', 'floor'));
    console.log(ratio('new', 'floor'));
  } finally {
    await pg.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error((e as Error).message);
  process.exitCode = 1;
});
