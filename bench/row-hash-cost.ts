/**
 * `npx tsx bench/row-hash-cost.ts [--scale 50] [--runs 3]`
 *
 * What a logical backup's recorded table checksums cost on the database, per row hash (issue 10):
 * on a throwaway cluster with pgbench data, the query postgres/logical-checksums.ts runs for the
 * largest table (its row count and the sum over a 1/4 key sample, as at scale 50 under the default
 * 256 MiB exact budget; the sum is fingerprint.ts's rowHashSum) and the whole-table sum, with md5 (records made before 2026-12) and with
 * hashtextextended (since), interleaved per round. Prints wall seconds per query and round.
 */
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import { ROW_TEXT_SETTINGS, rowHashSum } from '../lib/core/engines/postgres/fingerprint';
import { pgBin } from '../lib/core/engines/postgres/tools';
import { startThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { measureOk, median } from './measure';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { scale: { type: 'string', default: '50' }, runs: { type: 'string', default: '3' } }, strict: true });
  const [scale, runs] = [Number(values.scale), Number(values.runs)];
  const pg = await startThrowawayPostgres({ databases: ['app'] });
  try {
    await measureOk(pgBin('pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', 'app'], {});
    const client = new Client({ connectionString: pg.url('app') });
    await client.connect();
    await client.query(ROW_TEXT_SETTINGS);
    const queries: Record<string, string> = {};
    for (const hash of ['md5', 'hashtext'] as const) {
      queries[`${hash}, 1/4 sample`] = `select count(*), coalesce(${rowHashSum(hash)} filter (where t.aid % 4 = 0), 0) from only public.pgbench_accounts t`;
      queries[`${hash}, whole table`] = `select count(*), coalesce(${rowHashSum(hash)}, 0) from only public.pgbench_accounts t`;
    }
    const seconds: Record<string, number[]> = {};
    for (let round = 1; round <= runs; round++) {
      for (const [name, sql] of Object.entries(queries)) {
        const started = process.hrtime.bigint();
        await client.query(sql);
        (seconds[name] ??= []).push(Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
    await client.end();
    process.stdout.write(`pgbench scale ${scale}, pgbench_accounts, ${runs} interleaved round(s), wall seconds:\n`);
    for (const [name, s] of Object.entries(seconds)) {
      process.stdout.write(`  ${name.padEnd(22)} median ${median(s).toFixed(2)} (${s.map((x) => x.toFixed(2)).join(', ')})\n`);
    }
  } finally {
    await pg.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
