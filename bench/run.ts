/**
 * `npm run bench [-- --runs N] [--scales 50,200] [--quick] [--no-profile] [--no-write]`
 *
 * Logical backup and restore of pgbench data: pg_dump -Fc, pg_dump -Fd -j2 and tidemark, side by
 * side on one throwaway cluster, then BENCHMARKS.md's generated section is rewritten with the
 * figures. --quick is a smoke run (scale 5, one round) that prints but does not touch BENCHMARKS.md.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runLogicalPostgres } from './logical-postgres';
import { renderMarkdown, writeBenchmarks } from './report';

const ROOT = resolve(__dirname, '..');

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run bench -- [--runs N] [--scales 50,200] [--quick] [--no-profile] [--no-write]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      scales: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const runs = Number(values.runs ?? (values.quick ? 1 : 5));
  if (!Number.isInteger(runs) || runs < 1) usage(`--runs ${values.runs}: expected a positive integer`);
  const scales = (values.scales ?? (values.quick ? '5' : '50,200')).split(',').map(Number);
  if (scales.some((s) => !Number.isInteger(s) || s < 1)) usage(`--scales ${values.scales}: expected positive integers, e.g. 50,200`);
  const write = values.write || (!values.quick && !values['no-write']);

  const args = process.argv.slice(2);
  const command = `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const result = await runLogicalPostgres({
    runs,
    scales,
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
