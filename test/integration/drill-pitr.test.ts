import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import type { DrillReport } from '../../lib/core/drill/report';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn } from '../../lib/core/engines/postgres/wal/wal-names';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, writeConfig } from '../harness/tidemark';
import { untilWith } from '../harness/until';
import { testWorker } from '../harness/bundles';

jest.setTimeout(900_000);

const until = untilWith({ timeoutMs: 90_000, everyMs: 250 });

/**
 * A physical PITR drill through the worker entry: a full backup, WAL streamed, a logical backup
 * with recorded checksums in the middle, more writes. A drill at a time between the writes restores
 * exactly the rows committed by then; a random drill lands on the logical backup's consistent point
 * and compares the physically restored data with the checksums the logical backup recorded.
 */
describe('drill worker: PostgreSQL physical + WAL (PITR)', () => {
  const pg = usePostgres({ settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10 } });
  const tmp = useTempDir('tidemark-drill-pitr-');
  let cfg: { path: string; config: TidemarkConfig };
  const stop = new AbortController();
  let streaming: Promise<void> | undefined;
  let between = '';
  let logicalId = '';

  const drill = async (id: string, target: string[], assertions: { name: string; sql: string; expect: number | boolean }[]) => {
    const config = { ...cfg.config, sources: { app: { ...cfg.config.sources.app, drill: { assertions } } } };
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    const child = spawn(process.execPath, [testWorker(), 'drill', 'app', '--id', id, ...target, '--kind', 'full', '--started-at', new Date().toISOString()], {
      cwd: ROOT,
      env: { ...base, TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_SPOOL: join(tmp.path, 'spool') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number];
    const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { msg: string; report?: DrillReport });
    return { code, stderr, report: lines[lines.length - 1].report! };
  };

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text, at timestamptz default clock_timestamp())', 'app');
    // In the dump, empty after a physical restore: the cross-check must leave it out, not fail on it.
    await pg.sql("create unlogged table scratchpad (k int primary key, v text); insert into scratchpad select g, 'x' from generate_series(1, 10) g", 'app');
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
    streaming = runStream(cfg.config, 'app', { spoolDir: join(tmp.path, 'stream-spool'), signal: stop.signal, write: () => undefined });
    streaming.catch(() => undefined);
    await until('the streamer', async () => (await pg.sql('select count(*) from pg_replication_slots where active')) === '1');

    await pg.sql("insert into ledger (note) select 'before full' from generate_series(1, 100)", 'app');
    await runBackup(cfg.config, 'app', { type: 'full', progress });
    await pg.sql("insert into ledger (note) select 'after full' from generate_series(1, 50)", 'app');
    logicalId = (await runBackup(cfg.config, 'app', { type: 'logical', progress })).id;
    await new Promise((r) => setTimeout(r, 300));
    await pg.sql("insert into ledger (note) select 'after logical' from generate_series(1, 25)", 'app');
    await new Promise((r) => setTimeout(r, 300));
    between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 300));
    await pg.sql("insert into ledger (note) select 'too late' from generate_series(1, 10)", 'app');
    await pg.sql('select pg_switch_wal()', 'app');
    const lsn = await pg.sql('select pg_current_wal_lsn()', 'app');
    await until('the archive to reach the last commit', async () => {
      const point = await new WalArchive(await Repository.open(cfg.config), 'app').newestDurablePoint();
      return point !== undefined && parseLsn(point.lsn) >= parseLsn(lsn);
    });
  }, 600_000);

  afterAll(async () => {
    stop.abort();
    await streaming?.catch(() => undefined);
  }, 120_000);

  it('a drill at a time restores exactly the rows committed by then: PITR, pg_amcheck clean, RPO below a second', async () => {
    const run = await drill('20261201T090000Z-111111', ['--target', between], [
      { name: 'rows at the target', sql: 'select count(*) from ledger', expect: 175 },
      { name: 'nothing later', sql: "select count(*) from ledger where note = 'too late'", expect: 0 },
      // The server checked is the one that replayed, never restarted (its log, which each start
      // appends to, shows one start), run as a throwaway: no fsync, no TCP.
      {
        name: 'the replaying server, a throwaway',
        sql: "select (select count(*) from regexp_matches(pg_read_file('log/tidemark-restore.log'), 'starting PostgreSQL', 'g')) = 1 and current_setting('fsync') = 'off' and current_setting('listen_addresses') = ''",
        expect: true,
      },
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const r = run.report;
    expect(r).toMatchObject({ ok: true, method: 'pg-physical', kind: 'full', target: { kind: 'time', at: between }, cleanedUp: true });
    const checks = Object.fromEntries(r.checks.map((c) => [c.name, c]));
    expect(checks['restored point'].ok).toBe(true);
    expect(checks['pg_amcheck'].ok).toBe(true);
    expect(checks['recorded checksums'].detail).toMatch(/^skipped: /);
    expect(checks['assertion: the replaying server, a throwaway']).toMatchObject({ ok: true });
    expect(r.restoredPoint! <= between).toBe(true);
    expect(r.rpoSeconds!).toBeLessThan(2);
    expect(existsSync(join(tmp.path, 'spool', 'drills', '20261201T090000Z-111111'))).toBe(false);
  });

  it('a random drill lands on the logical backup’s point and the physical restore equals its recorded checksums', async () => {
    const run = await drill('20261201T090100Z-222222', ['--target', between, '--random'], [{ name: 'rows at the logical backup', sql: 'select count(*) from ledger', expect: 150 }]);
    expect(run.code).toBe(0);
    const r = run.report;
    expect(r).toMatchObject({ ok: true, method: 'pg-physical', target: { kind: 'time', random: true }, cleanedUp: true });
    const checks = Object.fromEntries(r.checks.map((c) => [c.name, c]));
    expect(checks['recorded checksums']).toMatchObject({ ok: true });
    expect(checks['recorded checksums'].detail).toContain(`pg-logical backup ${logicalId} (an independent method)`);
    expect(checks['recorded checksums'].detail).toContain('not checked: public.scratchpad (unlogged)');
    expect(checks['assertion: rows at the logical backup'].ok).toBe(true);
  });
});
