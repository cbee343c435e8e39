/**
 * Two builds of the CLI restoring the same physical full backup, interleaved (who goes first
 * alternates by round): for a change to the restore path, measured against the commit before it.
 *
 *   npx tsx bench/restore-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 7] [--node <binary>]
 *
 * Bundle each side with lib/local/cli-bundle.ts (`bundleCli(checkout, outDir)`; a `git worktree` of
 * the old commit gives the old one). A throwaway cluster gets pgbench data at --scale; the new CLI
 * takes the backup into a folder repository; each round restores it into a fresh directory with
 * each CLI (page cache warm, `sync` before each). Prints each side's times and medians and the
 * per-round ratios.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { withPgbenchCluster } from './ab-cluster';
import { median } from './measure';
import { DATA_NODE_FLAGS } from '../lib/local/node-flags';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { scale: { type: 'string', default: '50' }, rounds: { type: 'string', default: '7' }, node: { type: 'string', default: process.execPath } },
});
if (positionals.length !== 2) throw new Error('usage: npx tsx bench/restore-ab.ts <old tidemark.js> <new tidemark.js> [--scale 50] [--rounds 7] [--node <binary>]');
const clis = { old: positionals[0], new: positionals[1] };
const node = values.node!;

withPgbenchCluster('restore-ab', { scale: values.scale! }, async ({ work, config }) => {
  execFileSync(node, [...DATA_NODE_FLAGS, clis.new, 'backup', 'app', '--type', 'full', '--config', config], { stdio: 'ignore' });
  const times: Record<keyof typeof clis, number[]> = { old: [], new: [] };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const side of round % 2 ? (['new', 'old'] as const) : (['old', 'new'] as const)) {
      const dir = join(work, `restored-${side}`);
      execFileSync('sync');
      const started = process.hrtime.bigint();
      const run = spawnSync(node, [...DATA_NODE_FLAGS, clis[side], 'restore', 'app', '--to', dir, '--config', config], { encoding: 'utf8' });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (run.status !== 0) throw new Error(`${side}: ${run.stderr}`);
      times[side].push(seconds);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const side of ['old', 'new'] as const) console.log(`${side}: ${times[side].map((s) => s.toFixed(2)).join(' ')} s, median ${median(times[side]).toFixed(2)} s`);
  console.log(`new/old per round ${times.new.map((s, i) => (s / times.old[i]).toFixed(2)).join(' ')}; medians ${(median(times.new) / median(times.old)).toFixed(3)}`);
});
