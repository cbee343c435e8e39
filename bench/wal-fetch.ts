/**
 * WAL fetch throughput, measured by hand (not part of `npm run bench`):
 *
 *   npx tsx bench/wal-fetch.ts [segments=24] [s3]
 *
 * Fills `segments` full 16 MiB WAL segments on a throwaway cluster, archives them with wal-push's
 * code into a folder (or s3rver with `s3`), then replays the restore_command PostgreSQL would run,
 * once per segment, in order (from one shell, as PostgreSQL's startup process runs it), against
 * (a) the prefetcher and (b) `tidemark wal-fetch` started per segment (node start, key unwrap,
 * fetch: what a plain restore_command costs).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../lib/core/config/load';
import { WalArchive } from '../lib/core/engines/postgres/wal/wal-archive';
import { WalPrefetcher } from '../lib/core/engines/postgres/wal/wal-prefetch';
import { pushWalFile } from '../lib/core/engines/postgres/wal/wal-push';
import { Repository } from '../lib/core/repository/repository';
import { startThrowawayPostgres } from '../lib/local/throwaway-postgres';
import { shq } from './measure';

const sh = (command: string) => promisify(execFile)('sh', ['-c', command], { maxBuffer: 1 << 20 });

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 24);
  process.env.TIDEMARK_BENCH_KEY = 'bench-key-0123456789abcdefghijklmnopqrstuvwxyz';
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-walbench-'));
  const pg = await startThrowawayPostgres({ settings: { max_wal_size: '4GB' } });
  try {
    await pg.sql("select pg_create_physical_replication_slot('keep', true)"); // keeps the segments in pg_wal
    await pg.sql('create table t (id bigint, pad text)');
    const first = await pg.sql('select pg_walfile_name(pg_current_wal_lsn())');
    // ~1.2 MB of WAL per 1000 rows of 1 kB: fill `count` segments, then close the last one.
    while ((await pg.sql('select pg_walfile_name(pg_current_wal_lsn())')) < first.slice(0, 16) + (parseInt(first.slice(16), 16) + count).toString(16).toUpperCase().padStart(8, '0')) {
      await pg.sql("insert into t select g, array_to_string(array(select md5(random()::text || g) from generate_series(1, 30)), '') from generate_series(1, 10000) g");
    }
    await pg.sql('select pg_switch_wal()');
    const names = (await pg.sql(`select name from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$' and name >= '${first}' order by name`)).split('\n').slice(0, count);
    const configFile = { repository: `file://${dir}/repo`, encryption: { key: 'env:TIDEMARK_BENCH_KEY' }, sources: { app: { engine: 'postgres', url: pg.url() } } };
    const config = parseConfig(JSON.stringify(configFile), 'bench');
    const repository = await Repository.open(config);
    let started = Date.now();
    for (const name of names) await pushWalFile(repository, 'app', join(pg.dataDir, 'pg_wal', name), config.compression);
    const pushSeconds = (Date.now() - started) / 1000;
    const mb = names.length * 16 * 1.048576; // 16 MiB segments, in MB
    console.log(`archived ${names.length} segments (${mb.toFixed(0)} MB) in ${pushSeconds.toFixed(1)} s (in-process wal-push code): ${(mb / pushSeconds).toFixed(0)} MB/s`);

    const replay = join(dir, 'pg_wal');
    mkdirSync(replay);
    for (const parallel of [1, 4]) {
      const label = `parallel ${parallel}`;
      const prefetcher = new WalPrefetcher(new WalArchive(repository, 'app'), { spoolDir: join(dir, `spool-${parallel}`), ahead: 16, parallel });
      started = Date.now();
      const cpu = process.cpuUsage();
      await prefetcher.start(names[0]);
      // One shell runs the command per segment, as PostgreSQL's startup process would: started
      // from here, each would cost this node process (the prefetcher's) a round of page faults.
      const commands = names.map((name) => `sh -c ${shq([prefetcher.restoreCommand.replace(/%f/g, name).replace(/%p/g, join(replay, 'RECOVERYXLOG'))])}`);
      await sh(commands[0]);
      const first = Date.now() - started;
      await sh(['set -e', ...commands.slice(1)].join('\n'));
      const seconds = (Date.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      await prefetcher.stop();
      console.log(
        `prefetcher (${label}): ${names.length} segments in ${seconds.toFixed(2)} s = ${(mb / seconds).toFixed(0)} MB/s, first segment after ${first} ms, node CPU ${((used.user + used.system) / 1e6).toFixed(2)} s`,
      );
    }

    const yaml = join(dir, 'config.json');
    await import('node:fs').then((fs) => fs.writeFileSync(yaml, JSON.stringify(configFile)));
    const serial = names.slice(0, Math.min(6, names.length));
    started = Date.now();
    for (const name of serial) await sh(`node --import tsx ${join(__dirname, '../bin/tidemark.ts')} wal-fetch ${name} ${join(replay, 'RECOVERYXLOG')} --source app --config ${yaml}`);
    const seconds = (Date.now() - started) / 1000;
    console.log(`tidemark wal-fetch per segment: ${serial.length} segments in ${seconds.toFixed(1)} s = ${(serial.length / seconds).toFixed(1)} segments/s, ${((serial.length * 16 * 1.048576) / seconds).toFixed(0)} MB/s`);
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
