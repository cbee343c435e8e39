/**
 * `npm run bench:physical [-- --runs N] [--scales 50,200] [--pitr-wal-mib 1100] [--flush-seconds 10] [--no-write]`
 *
 * Physical backups of PostgreSQL (issue 7): tidemark against pg_basebackup (raw and compressed
 * floors) and pgBackRest 2.45 — full, incr after a 1% update, restore of the chain, PITR over
 * ≥ 1 GB of WAL, peak RSS, and the streamer's recovery point under load — then BENCHMARKS.md's
 * physical section is rewritten. A smoke run: `--scales 10 --runs 1 --pitr-wal-mib 200 --no-write`.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runPhysicalPostgres } from './physical-postgres';
import { renderPhysicalMarkdown, writePhysicalSection } from './physical-report';

const ROOT = resolve(__dirname, '..');
const USAGE = 'usage: npm run bench:physical -- [--runs N] [--scales 50,200] [--pitr-wal-mib MiB] [--flush-seconds S] [--no-write]';

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function positiveInts(flag: string, text: string): number[] {
  const xs = text.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1)) usage(`${flag} ${text}: expected positive integers, comma-separated`);
  return xs;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      scales: { type: 'string' },
      'pitr-wal-mib': { type: 'string' },
      'flush-seconds': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const [runs] = positiveInts('--runs', values.runs ?? '3');
  const scales = positiveInts('--scales', values.scales ?? '50,200');
  const [pitrWalMiB] = positiveInts('--pitr-wal-mib', values['pitr-wal-mib'] ?? '1100');
  const [flushSeconds] = positiveInts('--flush-seconds', values['flush-seconds'] ?? '10');
  const args = process.argv.slice(2);
  const command = `npm run bench:physical${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const result = await runPhysicalPostgres({
    runs,
    scales,
    pitrWalMiB,
    flushSeconds,
    workDir: join(ROOT, 'bench', '.work', 'physical-postgres'),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const markdown = renderPhysicalMarkdown(result, command);
  if (values['no-write']) {
    process.stdout.write(`\n${markdown}\n\n(not written to BENCHMARKS.md: --no-write)\n`);
  } else {
    writePhysicalSection(join(ROOT, 'BENCHMARKS.md'), markdown);
    process.stdout.write(`\n${markdown}\n\nBENCHMARKS.md updated.\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
