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
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { withPgbenchCluster } from './ab-cluster';
import { median } from './measure';
import { DATA_NODE_FLAGS } from '../lib/local/node-flags';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '5' }, node: { type: 'string', default: process.execPath } },
});
if (positionals.length !== 2) throw new Error('usage: npx tsx bench/backup-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 5] [--node <binary>]');
const node = values.node!;

withPgbenchCluster('backup-ab', { scale: values.scale!, dataChecksums: true }, async ({ conn, work, config }) => {
  const floor = `${pgBin('pg_basebackup')} ${conn.join(' ')} -Ft -Xnone --checkpoint=fast -D - | zstd -q -T0 -3 > ${join(work, 'floor.tar.zst')}`;
  const commands: Record<string, string[]> = {
    old: [node, ...DATA_NODE_FLAGS, positionals[0], 'backup', 'app', '--type', 'full', '--config', config],
    new: [node, ...DATA_NODE_FLAGS, positionals[1], 'backup', 'app', '--type', 'full', '--config', config],
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
});
