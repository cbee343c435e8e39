/**
 * `npm run bench [-- --runs N] [--scales 50,200] [--level L] [--floor-levels 1,3] [--baseline DIR]
 *                [--quick] [--no-profile] [--no-write]`
 *
 * Logical backup and restore of pgbench data: tidemark's CLI and worker against pg_dump -Fc,
 * pg_restore and the floor (the same tools without tidemark), every contender in every round, the
 * same number of rounds at every scale; then BENCHMARKS.md's generated section is rewritten with
 * the figures and the targets. --quick is a smoke run (scale 5, one round) that prints but does not
 * touch BENCHMARKS.md.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runLogicalPostgres } from './logical-postgres';
import { renderMarkdown, writeBenchmarks } from './report';

const ROOT = resolve(__dirname, '..');
const USAGE = 'usage: npm run bench -- [--runs N] [--scales 50,200] [--level L] [--floor-levels 1,3] [--baseline DIR] [--quick] [--no-profile] [--no-write]';

function usage(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function positiveInts(flag: string, text: string, max = Infinity): number[] {
  const xs = text.split(',').map(Number);
  if (xs.some((x) => !Number.isInteger(x) || x < 1 || x > max)) usage(`${flag} ${text}: expected positive integers${max < Infinity ? ` up to ${max}` : ''}, comma-separated`);
  return xs;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      scales: { type: 'string' },
      level: { type: 'string' },
      'floor-levels': { type: 'string' },
      baseline: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const [runs] = positiveInts('--runs', values.runs ?? (values.quick ? '1' : '5'));
  const scales = positiveInts('--scales', values.scales ?? (values.quick ? '5' : '50,200'));
  const level = values.level === undefined ? undefined : positiveInts('--level', values.level, 19)[0];
  const floorLevels = positiveInts('--floor-levels', values['floor-levels'] ?? '1,3', 19);
  const write = values.write || (!values.quick && !values['no-write']);

  const args = process.argv.slice(2);
  const command = `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const result = await runLogicalPostgres({
    runs,
    scales,
    level,
    floorLevels,
    baseline: values.baseline,
    workDir: join(ROOT, 'bench', '.work', 'logical-postgres'),
    profile: !values['no-profile'],
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const markdown = renderMarkdown(result, command);
  if (write) {
    writeBenchmarks(join(ROOT, 'BENCHMARKS.md'), markdown);
    process.stdout.write('\nBENCHMARKS.md updated.\n');
  } else {
    process.stdout.write(`\n${markdown}\n\n(not written to BENCHMARKS.md: ${values.quick ? '--quick' : '--no-write'})\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
