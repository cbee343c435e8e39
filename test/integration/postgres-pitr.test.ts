import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import type { RecoveryTargetOptions } from '../../lib/core/engines/recovery-target';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { parseLsn } from '../../lib/core/engines/postgres/wal/wal-names';
import { pgBin } from '../../lib/core/engines/postgres/tools';
import { RecoveryTargetOutOfRange } from '../../lib/core/errors';
import { freePort } from '../../lib/core/free-port';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { psql, usePostgres } from '../harness/postgres';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { serverUserWhenRoot } from '../../lib/core/process/os-user';
import { untilWith } from '../harness/until';

jest.setTimeout(900_000);

/** As root, restored servers run as `postgres` (PostgreSQL refuses root). */
const serverUser = () => serverUserWhenRoot('postgres');

const until = untilWith({ timeoutMs: 90_000, everyMs: 250 });

interface LedgerRow {
  readonly id: number;
  readonly xid: string;
  readonly lsn: string;
  /** Commit time, ISO with microseconds. */
  readonly committed: string;
}

/**
 * Point-in-time recovery end to end: a physical full backup, WAL streamed by `tidemark stream`,
 * a ledger whose rows carry their exact commit time (track_commit_timestamp) and LSN, a table
 * dropped in the middle and another after it; then restores to times, LSNs, an xid, just before
 * the drop, and the latest point, each started and checked row by row.
 */
describe('PostgreSQL point-in-time recovery from a physical backup and streamed WAL', () => {
  const pg = usePostgres({
    dataChecksums: true,
    fast: false,
    settings: { wal_level: 'replica', max_wal_senders: 10, max_replication_slots: 10, track_commit_timestamp: 'on' },
  });
  const tmp = useTempDir('tidemark-pitr-');
  let cfg: { path: string; config: TidemarkConfig };
  const ledger: LedgerRow[] = [];
  let victimRows = 0;
  const stop = new AbortController();
  let streaming: Promise<void> | undefined;
  const started: string[] = [];
  let restores = 0;

  /** One ledger row per transaction; its commit time and the LSN right after its commit. */
  async function commitLedgerRows(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const out = await pg.sql(
        `insert into ledger (note) values ('row') returning id || '|' || xmin::text || '|' || pg_current_wal_insert_lsn()::text`,
        'app',
      );
      const [id, xid] = out.split('|');
      const meta = await pg.sql(`select to_char(pg_xact_commit_timestamp('${xid}'::xid) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' || pg_current_wal_lsn()::text`, 'app');
      const [committed, lsn] = meta.split('|');
      ledger.push({ id: Number(id), xid, lsn, committed });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function restoreTo(target: RecoveryTargetOptions, check: (url: string) => Promise<void>): Promise<void> {
    const dir = join(tmp.path, `restore-${++restores}`);
    const port = await freePort();
    await runRestore(cfg.config, 'app', { ...target, to: dir, start: true, port, progress });
    started.push(dir);
    try {
      await check(`postgres://postgres@127.0.0.1:${port}/app`);
    } finally {
      await stopDataDir(dir);
    }
  }

  async function stopDataDir(dir: string): Promise<void> {
    await runTool(pgBin('pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop'], { cwd: dir, ...serverUser() }).catch(() => undefined);
  }

  const ledgerIds = async (url: string) => (await psql(url, 'select coalesce(string_agg(id::text, \',\' order by id), \'\') from ledger')).split(',').filter(Boolean).map(Number);

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    await pg.createDatabase('app');
    await pg.sql('create table ledger (id bigserial primary key, note text)', 'app');
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app'), stream: { flushSeconds: 1 } } },
    });
    const lines: string[] = [];
    streaming = runStream(cfg.config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void lines.push(l) });
    streaming.catch(() => undefined);
    await until('the streamer', async () => (await pg.sql("select count(*) from pg_replication_slots where active")) === '1');

    await commitLedgerRows(5);
    await runBackup(cfg.config, 'app', { type: 'full', progress });
    await commitLedgerRows(10);
    await pg.sql("create table victim (id int primary key, v text); insert into victim select g, 'keep me ' || g from generate_series(1, 500) g", 'app');
    victimRows = 500;
    await commitLedgerRows(5);
    await pg.sql('create table other (id int)', 'app');
    await pg.sql('drop table victim', 'app'); // the drop
    await commitLedgerRows(5);
    await pg.sql('drop table other', 'app'); // a later drop of another table
    await commitLedgerRows(5);
    await pg.sql('select pg_switch_wal()', 'app');
    const last = ledger[ledger.length - 1];
    // Durable: the archive reaches past the last commit.
    await until('the archive to cover the last commit', async () => {
      const point = await new WalArchive(await Repository.open(cfg.config), 'app').newestDurablePoint();
      return point !== undefined && parseLsn(point.lsn) >= parseLsn(last.lsn);
    });
  }, 600_000);

  afterAll(async () => {
    stop.abort();
    await streaming?.catch(() => undefined);
    for (const dir of started) await stopDataDir(dir);
  }, 120_000);

  it('list shows the window reaching past the newest backup, and with --ddl the two drops in order', async () => {
    const listed = await runList(cfg.config, 'app', { ddl: true });
    expect(listed.window?.to && listed.window.to > listed.backups[listed.backups.length - 1].restorePoint).toBe(true);
    const drops = (listed.ddl ?? []).filter((e) => e.kind === 'DROP');
    expect(drops).toHaveLength(2);
    // victim's drop came after the 20th ledger row and before the 21st; other's after the 25th.
    expect(drops[0].time > ledger[19].committed && drops[0].time < ledger[20].committed).toBe(true);
    expect(drops[1].time > ledger[24].committed && drops[1].time < ledger[25].committed).toBe(true);
    expect(drops[0].objects.join(' ')).toMatch(/relation oid \d+/);
  });

  it('restores to 5 targets inside the window (time, lsn, xid): exactly the rows committed at or before each', async () => {
    // Targets between ledger commits after the backup; rows[k] is the last one that must be there.
    const afterBackup = ledger.slice(5);
    const picks = [3, 9, 14, 19, 27].map((k) => afterBackup[Math.min(k, afterBackup.length - 2)]);
    const kinds = ['time', 'lsn', 'xid', 'time', 'lsn'] as const;
    for (const [i, row] of picks.entries()) {
      const kind = kinds[i];
      const target = kind === 'time' ? { time: row.committed } : kind === 'lsn' ? { lsn: row.lsn } : { xid: row.xid };
      await restoreTo(target, async (url) => {
        const expected = ledger.filter((r) => r.id <= row.id).map((r) => r.id);
        expect({ kind, ids: await ledgerIds(url) }).toEqual({ kind, ids: expected });
        const port = new URL(url).port;
        await runTool(pgBin('pg_amcheck'), ['-h', '127.0.0.1', '-p', port, '-U', 'postgres', '--install-missing', '--heapallindexed', '-d', 'app']);
      });
    }
  });

  it('--before-drop victim: the table is back with every row, and nothing committed after the drop is there', async () => {
    const dropIndex = 20; // 5 before the backup + 10 + 5: the drop came after the 20th ledger row
    await restoreTo({ beforeDrop: 'public.victim' }, async (url) => {
      expect(Number(await psql(url, 'select count(*) from victim'))).toBe(victimRows);
      expect(await ledgerIds(url)).toEqual(ledger.slice(0, dropIndex).map((r) => r.id));
      expect(await psql(url, "select count(*) from pg_class where relname = 'other'")).toBe('1'); // created just before the drop
    });
  });

  it('--latest replays to the newest durable WAL: every committed row', async () => {
    await restoreTo({ latest: true }, async (url) => {
      expect(await ledgerIds(url)).toEqual(ledger.map((r) => r.id));
      expect(await psql(url, "select count(*) from pg_class where relname in ('victim', 'other')")).toBe('0');
    });
  });

  it('--latest with a segment lost after the backup stops before the gap, and says so naming it', async () => {
    // Two more whole segments after everything above; the first of them goes missing.
    for (let i = 0; i < 2; i++) {
      await commitLedgerRows(2);
      await pg.sql('select pg_switch_wal()', 'app');
    }
    const end = await pg.sql('select pg_current_wal_lsn()', 'app');
    await until('the archive to cover the new segments', async () => {
      const point = await new WalArchive(await Repository.open(cfg.config), 'app').newestDurablePoint();
      return point !== undefined && parseLsn(point.lsn) >= parseLsn(end);
    });
    const walDir = join(tmp.path, 'repo', 'app', 'wal', '00000001');
    const whole = readdirSync(walDir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    const lost = whole[whole.length - 2];
    const kept = readFileSync(join(walDir, lost));
    rmSync(join(walDir, lost));
    try {
      const notes: string[] = [];
      const dir = join(tmp.path, 'past-gap');
      const port = await freePort();
      await runRestore(cfg.config, 'app', { latest: true, to: dir, start: true, port, progress: { ...progress, note: (m) => void notes.push(m) } });
      started.push(dir);
      try {
        expect(notes.filter((n) => n.startsWith('warning:'))).toEqual([expect.stringMatching(new RegExp(`^warning: --latest stops at .*past a gap replay cannot cross \\(${lost} to ${lost} missing`))]);
        // Every row of the window is there; the rows committed after the lost segment began are not.
        const ids = await ledgerIds(`postgres://postgres@127.0.0.1:${port}/app`);
        expect(ids.length).toBeGreaterThanOrEqual(ledger.length - 4);
        expect(ids.length).toBeLessThan(ledger.length);
      } finally {
        await stopDataDir(dir);
      }
    } finally {
      writeFileSync(join(walDir, lost), kept);
    }
  });

  it('refuses a time outside the window and a table never dropped, before writing anything', async () => {
    const dir = join(tmp.path, 'never');
    await expect(runRestore(cfg.config, 'app', { to: dir, time: '2001-01-01T00:00:00Z', progress })).rejects.toThrow(RecoveryTargetOutOfRange);
    await expect(runRestore(cfg.config, 'app', { to: dir, time: '2001-01-01T00:00:00Z', progress })).rejects.toThrow(/outside the restorable window/);
    // Which table a drop removed is only in the replayed catalog: this one fails after replay, and
    // leaves the directory empty.
    const nodrop = join(tmp.path, 'nodrop');
    await expect(runRestore(cfg.config, 'app', { to: nodrop, beforeDrop: 'public.ledger', progress })).rejects.toThrow(/none of the 2 drop\(s\).*removed that table/);
    expect(readdirSync(nodrop)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
