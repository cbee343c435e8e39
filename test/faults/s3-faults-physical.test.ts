import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn } from '../../lib/core/engines/postgres/wal/wal-names';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { freePort } from '../../lib/core/free-port';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { faultInjector, type FaultInjector } from './fault-injector';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';
import { untilWith } from '../harness/until';

/**
 * Physical backups and the WAL streamer against a faulty S3 (issue 11): at 5% injected faults a
 * full and an incremental backup and the WAL archive all complete; during a hard outage the
 * streamer keeps the WAL (the slot holds it on the server) and catches up afterwards without a gap;
 * the latest restore has every committed row.
 */
process.env.TIDEMARK_S3_STALL_SECONDS = '1';
jest.setTimeout(600_000);

/** As root, restored servers run as `postgres` (PostgreSQL refuses root). */
const serverUser = () => serverUserWhenRoot('postgres');

const until = untilWith({ timeoutMs: 120_000, everyMs: 250 });

describe('physical backups and WAL streaming through a faulty S3', () => {
  const s3 = useS3();
  const pg = usePostgres({ dataChecksums: true, settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 } });
  const tmp = useTempDir('tidemark-faults-physical-');
  let proxy: S3Proxy;
  let faults: FaultInjector;
  let cfg: TidemarkConfig;
  const stop = new AbortController();
  let streaming: Promise<void> | undefined;
  const log: string[] = [];
  let restored: string | undefined;

  /** n rows, each its own transaction, through one psql: the WAL insert position after the last. */
  const commit = async (n: number) => {
    const out = await pg.sql("insert into ledger (note) values ('row') returning pg_current_wal_insert_lsn()::text;\n".repeat(n), 'app');
    return out.split('\n').pop()!;
  };
  const durable = async () => (await new WalArchive(await Repository.open(cfg), 'app').newestDurablePoint())?.lsn;

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    faults = faultInjector({ rate: 0.05, seed: 1107 });
    proxy = await startS3Proxy(s3.endpoint, { onRequest: (r) => faults.hook(r) });
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text); create table filler as select g, repeat(md5(g::text), 8) as pad from generate_series(1, 200000) g', 'app');
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: { ...s3.repository('physical'), endpoint: proxy.endpoint },
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    }).config;
    streaming = runStream(cfg, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void log.push(l) });
    streaming.catch(() => undefined);
    await until('the streamer', async () => (await pg.sql('select count(*) from pg_replication_slots where active')) === '1');
  });

  afterAll(async () => {
    stop.abort();
    await streaming?.catch(() => undefined);
    if (restored) await runTool(pgBin('pg_ctl'), ['-D', restored, '-m', 'immediate', '-w', 'stop'], { cwd: restored, ...serverUser() }).catch(() => undefined);
    await proxy?.close();
  });

  it('a full and an incremental backup complete at 5% faults, and verify is clean', async () => {
    await commit(20);
    const full = await runBackup(cfg, 'app', { type: 'full', progress });
    await pg.sql('update filler set pad = upper(pad) where g <= 2000', 'app');
    await commit(20);
    const incr = await runBackup(cfg, 'app', { type: 'incr', progress });
    expect(incr.type).toBe('incr');
    const listed = await runList(cfg, 'app');
    expect(listed.backups.map((b) => b.id)).toEqual([full.id, incr.id]);
    expect((await runVerify(cfg, 'app', { progress })).ok).toBe(true);
    expect(Object.values(faults.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('during a hard outage the streamer holds on, then catches up without a gap; the latest restore has every row', async () => {
    const before = log.length;
    faults.outage('503');
    await commit(30);
    await pg.sql('select pg_switch_wal()', 'app');
    await commit(30);
    await new Promise((r) => setTimeout(r, 5_000)); // several flush intervals with S3 down
    faults.outage('off');
    // It said so while it happened, and went on.
    expect(log.slice(before).join('')).toMatch(/"level":"error","msg":"archiving failed, will retry: cannot inspect s3:\/\/[^ ]+ \(HTTP 503\)/);
    const last = await commit(10);
    await pg.sql('select pg_switch_wal()', 'app');
    await until('the archive to catch up past the last commit', async () => {
      const lsn = await durable();
      return lsn !== undefined && parseLsn(lsn) >= parseLsn(last);
    });
    const listed = await runList(cfg, 'app');
    expect(listed.archive?.gaps).toEqual([]);
    expect((await runVerify(cfg, 'app', { progress })).ok).toBe(true);

    restored = join(tmp.path, 'latest');
    const port = await freePort();
    await runRestore(cfg, 'app', { latest: true, to: restored, start: true, port, progress });
    const psql = (sql: string) => runTool(pgBin('psql'), ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'app', '-c', sql]).then((s) => s.trim());
    expect(await psql('select count(*) from ledger')).toBe(await pg.sql('select count(*) from ledger', 'app'));
    expect(await psql('select max(id) from ledger')).toBe(await pg.sql('select max(id) from ledger', 'app'));
  });
});
