import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runStream } from '../../lib/core/commands/wal';
import { runVerify } from '../../lib/core/commands/verify';
import { newestRestorablePoint, secondsSince } from '../../lib/core/commands/newest-point';
import { checkRecoveryPoints } from '../../lib/core/commands/rpo-check';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { EncryptionKeyError, RecoveryTargetOutOfRange, TargetNotEmpty, UsageError } from '../../lib/core/errors';
import { silentProgress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { useMariadb } from '../harness/mariadb';
import { useS3 } from '../harness/s3';
import { runCli, spawnCli, useTempDir, writeConfig } from '../harness/tidemark';

interface Position {
  readonly file: string;
  readonly position: number;
}

/** A streamer in this process, stopped the way SIGTERM stops the CLI's. */
function streamInProcess(config: TidemarkConfig, spoolDir: string): { lines: string[]; stop(): Promise<void> } {
  const abort = new AbortController();
  const lines: string[] = [];
  const done = runStream(config, 'app', { spoolDir, signal: abort.signal, write: (l) => lines.push(l) });
  done.catch(() => undefined);
  return {
    lines,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

describe('MySQL/MariaDB continuous binlog and point-in-time restore', () => {
  const source = useMariadb();
  const target = useMariadb({ binlog: false });
  const tmp = useTempDir();
  let config: TidemarkConfig;
  let configPath: string;
  let spool: string;
  let streamer: { lines: string[]; stop(): Promise<void> } | undefined;

  const masterStatus = async (): Promise<Position> => {
    const [file, position] = (await source.sql('SHOW MASTER STATUS')).split('\t');
    return { file, position: Number(position) };
  };
  const ids = async (db: string, table = 'ledger') => (await target.sql(`SELECT IFNULL(GROUP_CONCAT(id ORDER BY id), '') FROM \`${table}\``, db)).split(',').filter(Boolean).map(Number);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const databaseExists = async (db: string) => (await target.sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)) === '1';

  /** Waits until the archive holds the binlog up to `pos` (a whole file or a partial reaching it). */
  async function waitDurable(pos: Position, cfg: TidemarkConfig = config, timeoutMs = 30_000): Promise<void> {
    const store = (await Repository.open(cfg)).store;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      if (point?.binlog && comparePositions(point.binlog, pos) >= 0) return;
      if (Date.now() > deadline) throw new Error(`the archive did not reach ${pos.file}:${pos.position} (it has ${JSON.stringify(point)})`);
      await sleep(200);
    }
  }

  beforeAll(async () => {
    const written = writeConfig(tmp.path, 'binlog.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: source.url('app'), stream: { flushSeconds: 1 } } },
    });
    config = written.config;
    configPath = written.path;
    spool = join(tmp.path, 'spool');
    await source.sql('CREATE DATABASE app');
    await source.sql(
      `CREATE TABLE ledger (id INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB;
       INSERT INTO ledger VALUES (1, 'before'), (2, 'before'), (3, 'before');
       CREATE TABLE precious (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
       INSERT INTO precious VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e');
       CREATE TABLE decoy (id INT PRIMARY KEY) ENGINE=InnoDB;
       CREATE TABLE \`sc ratch\` (id INT) ENGINE=InnoDB;
       CREATE TABLE load_rows (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB;`,
      'app',
    );
  });

  afterAll(async () => {
    await streamer?.stop().catch(() => undefined);
  });

  /** Per ledger row: when it was committed (its binlog second) and the binlog position right after it. */
  const committed = new Map<number, { second: number; after: Position; gtid: string }>();

  it('restores exactly the rows committed at or before 5 random targets (time and position), across a rotation and two dumps', async () => {
    await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    streamer = streamInProcess(config, spool);
    for (let id = 4; id <= 15; id++) {
      // Commits ≥ 1 s apart, each 150 ms into its second: the second after it is a clean time target.
      await sleep(1150 - (Date.now() % 1000));
      const second = Math.floor(Date.now() / 1000);
      await source.sql(`INSERT INTO ledger VALUES (${id}, 'streamed')`, 'app');
      committed.set(id, { second, after: await masterStatus(), gtid: await source.sql('SELECT @@gtid_binlog_pos') });
      if (id === 8) await source.sql('FLUSH BINARY LOGS'); // rotation while streaming
      if (id === 10) await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    }
    await waitDurable(committed.get(15)!.after);
    expect(committed.get(4)!.after.file).not.toBe(committed.get(15)!.after.file);

    // rpo-check measures from the binlog's newest durable event, not from the newest dump (row 10's).
    const store = (await Repository.open(config)).store;
    const newest = await newestRestorablePoint(store, 'app');
    expect(newest!.time).toBe((await mysqlBinlogArchive.newestDurablePoint(store, 'app'))!.time);
    expect(Date.parse(newest!.time)).toBeGreaterThanOrEqual(committed.get(15)!.second * 1000);
    expect(newest!.backup.restorePoint.time < new Date(committed.get(11)!.second * 1000).toISOString()).toBe(true);
    const emitted: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((line: string) => void emitted.push(line));
    try {
      expect(await checkRecoveryPoints(store, ['app'])).toEqual({ measured: ['app'], withoutBackup: [], failed: [] });
    } finally {
      log.mockRestore();
    }
    const age = (JSON.parse(emitted[0]) as { SecondsSinceNewestRestorablePoint: number }).SecondsSinceNewestRestorablePoint;
    expect(Math.abs(age - secondsSince(newest!.time))).toBeLessThanOrEqual(1);
    expect(age).toBeLessThan(Date.now() / 1000 - committed.get(10)!.second);

    // Random, and reported with the seed when an expectation fails.
    const seed = Date.now() % 2147483647;
    let state = seed || 1;
    const random = () => (state = (state * 48271) % 2147483647);
    const kinds = ['time', 'position', 'time', 'position', random() % 2 ? 'time' : 'position'];
    const targets = kinds.map((kind) => ({ kind, id: 4 + (random() % 11) })); // a time target needs a later commit: not row 15
    for (const [k, t] of targets.entries()) {
      const db = `pitr_${k}`;
      const c = committed.get(t.id)!;
      const at = t.kind === 'time' ? { time: new Date((c.second + 1) * 1000).toISOString() } : { position: `${c.after.file}:${c.after.position}` };
      await runRestore(config, 'app', { to: target.url(db), ...at, progress: silentProgress });
      expect({ seed, target: at, rows: await ids(db) }).toEqual({ seed, target: at, rows: range(1, t.id) });
    }

    await runRestore(config, 'app', { to: target.url('pitr_gtid'), gtid: committed.get(7)!.gtid, progress: silentProgress });
    expect(await ids('pitr_gtid')).toEqual(range(1, 7));
    await runRestore(config, 'app', { to: target.url('pitr_latest'), latest: true, progress: silentProgress });
    expect(await ids('pitr_latest')).toEqual(range(1, 15));
  });

  it('--before-drop brings the table back with every row and nothing committed after the drop, though another table was dropped later', async () => {
    await source.sql("INSERT INTO precious VALUES (6, 'f'), (7, 'g'), (8, 'h')", 'app');
    await source.sql('DROP TABLE IF EXISTS `sc ratch`, precious /* cleanup */', 'app');
    await source.sql("INSERT INTO ledger VALUES (16, 'after the drop')", 'app');
    await source.sql('DROP TABLE decoy', 'app');
    await source.sql("INSERT INTO ledger VALUES (17, 'after the decoy')", 'app');
    await waitDurable(await masterStatus());

    const progress = { ...silentProgress, notes: [] as string[], note(m: string) { this.notes.push(m); } };
    await runRestore(config, 'app', { to: target.url('undrop'), beforeDrop: 'app.precious', progress });
    expect(await target.sql('SELECT GROUP_CONCAT(CONCAT(id, v) ORDER BY id) FROM precious', 'undrop')).toBe('1a,2b,3c,4d,5e,6f,7g,8h');
    expect(await ids('undrop')).toEqual(range(1, 15));
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'undrop' AND TABLE_NAME IN ('decoy', 'sc ratch')")).toBe('2');
    expect(progress.notes.join('\n')).toMatch(/found drop-table of app\.precious at mariadb-bin\.\d+:\d+/);

    const listed = await runList(config, 'app', { ddl: true });
    const drops = listed.ddl!.map((d) => `${d.kind} ${d.objects.join(',')}`);
    expect(drops).toEqual(['drop-table app.sc ratch,app.precious', 'drop-table app.decoy']);
    expect(listed.ddl!.every((d) => /^mariadb-bin\.\d+:\d+$/.test(d.position) && !Number.isNaN(Date.parse(d.time)))).toBe(true);
    expect(listed.window!.to >= new Date(committed.get(15)!.second * 1000).toISOString()).toBe(true);
    const cli = await runCli(['-c', configPath, 'list', 'app', '--ddl']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^drops and truncates:\n {2}\S+Z {2}mariadb-bin\.\d+:\d+ {2}drop-table app\.sc ratch, app\.precious\n {2}\S+Z {2}mariadb-bin\.\d+:\d+ {2}drop-table app\.decoy$/m);
  });

  it('--table with --before-drop puts back only that table, at that point, into a live database; refuses an existing table without --force', async () => {
    await target.sql('CREATE DATABASE live');
    await target.sql("CREATE TABLE ledger (id INT PRIMARY KEY, note VARCHAR(40)); INSERT INTO ledger VALUES (99, 'live')", 'live');
    const scratches = async () => target.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tidemark\\_restore\\_%'");

    const result = await runRestore(config, 'app', { to: target.url('live'), beforeDrop: 'app.precious', table: 'app.precious', progress: silentProgress });
    expect(result.table).toBe('app.precious');
    expect(await target.sql('SELECT GROUP_CONCAT(CONCAT(id, v) ORDER BY id) FROM precious', 'live')).toBe('1a,2b,3c,4d,5e,6f,7g,8h');
    expect(await target.sql("SELECT GROUP_CONCAT(TABLE_NAME ORDER BY 1) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'live'")).toBe('ledger,precious');
    expect(await ids('live')).toEqual([99]);
    expect(await scratches()).toBe('0');

    await target.sql("UPDATE precious SET v = 'changed'", 'live');
    await expect(runRestore(config, 'app', { to: target.url('live'), beforeDrop: 'app.precious', table: 'app.precious', progress: silentProgress })).rejects.toThrow(
      new TargetNotEmpty(`table precious already exists in root@127.0.0.1:${target.port}/live; drop or rename it, or pass --force to replace it`),
    );
    expect(await target.sql("SELECT COUNT(*) FROM precious WHERE v = 'changed'", 'live')).toBe('8');
    await runRestore(config, 'app', { to: target.url('live'), beforeDrop: 'app.precious', table: 'app.precious', force: true, progress: silentProgress });
    expect(await target.sql('SELECT GROUP_CONCAT(CONCAT(id, v) ORDER BY id) FROM precious', 'live')).toBe('1a,2b,3c,4d,5e,6f,7g,8h');

    // A time target: the ledger as of row 9's second, into a database that does not exist yet.
    const at = new Date((committed.get(9)!.second + 1) * 1000).toISOString();
    await runRestore(config, 'app', { to: target.url('one_table'), time: at, table: 'app.ledger', progress: silentProgress });
    expect(await ids('one_table')).toEqual(range(1, 9));
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'one_table'")).toBe('1');
    await expect(runRestore(config, 'app', { to: target.url('one_table'), latest: true, table: 'other.ledger', progress: silentProgress })).rejects.toThrow(UsageError);
    expect(await scratches()).toBe('0');
  });

  it('loses no event when the streamer is SIGKILLed and restarted under load, with a rotation in between', async () => {
    await streamer!.stop();
    streamer = undefined;
    let loading = true;
    let batches = 0;
    const load = (async () => {
      while (loading) {
        await source.sql(Array.from({ length: 20 }, (_, i) => `INSERT INTO load_rows (v) VALUES ('b${batches}-${i}');`).join('\n'), 'app');
        batches++;
      }
    })();
    const cli = () => spawnCli(['stream', 'app', '--config', configPath, '--spool', spool]);
    const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : null))));
    const first = cli();
    await sleep(4000);
    first.kill('SIGKILL');
    await exited(first);
    await sleep(500);
    const second = cli();
    let output = '';
    second.stdout!.on('data', (d) => (output += d));
    second.stderr!.on('data', (d) => (output += d));
    await sleep(2000);
    await source.sql('FLUSH BINARY LOGS');
    await sleep(2000);
    loading = false;
    await load;
    expect(batches).toBeGreaterThan(5);
    await waitDurable(await masterStatus());
    second.kill('SIGTERM');
    expect(await exited(second)).toBe(0);
    expect(output).toMatch(/binlog streamer stopped; everything received is archived/);

    await runRestore(config, 'app', { to: target.url('after_kill'), latest: true, progress: silentProgress });
    const digest = 'SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT(id, v) ORDER BY id)) FROM load_rows';
    expect(await target.sql(digest, 'after_kill')).toBe(await source.sql(digest, 'app'));
    expect(await ids('after_kill')).toEqual(range(1, 17));

    const verified = await runVerify(config, 'app', { progress: silentProgress });
    expect(verified.archive).toMatchObject({ ok: true, gaps: [], problems: [] });
    expect(verified.ok).toBe(true);
  });

  it('reports a binlog purged before the streamer caught up as a gap (log, metric, list, verify)', async () => {
    await source.sql("INSERT INTO ledger VALUES (18, 'never archived')", 'app');
    await source.sql('FLUSH BINARY LOGS');
    await source.sql("INSERT INTO ledger VALUES (19, 'never archived either')", 'app');
    await source.sql('FLUSH BINARY LOGS');
    const now = await masterStatus();
    // A binlog dump thread (a stopped streamer's, until the server notices) keeps its file from being purged.
    // InnoDB must also have checkpointed past a file (MariaDB's binlog checkpoint): retry until it is gone.
    const files = async () => (await source.sql('SHOW BINARY LOGS')).split('\n').map((l) => l.split('\t')[0]);
    let warnings = '';
    for (let i = 0; i < 100 && (await files()).length > 1; i++) {
      warnings = await source.sql(`PURGE BINARY LOGS TO '${now.file}'; SHOW WARNINGS; SELECT ID, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`);
      if ((await files()).length > 1) await sleep(200);
    }
    expect({ files: await files(), warnings }).toEqual({ files: [now.file], warnings: expect.any(String) });
    await source.sql("INSERT INTO ledger VALUES (20, 'after the gap')", 'app');
    const run = streamInProcess(config, spool);
    streamer = run;
    await waitDurable(await masterStatus());
    await run.stop();
    streamer = undefined;

    const logged = run.lines.join('');
    expect(logged).toMatch(/"level":"error","msg":"binlog gap: mariadb-bin\.\d+ … \(2 files\) were purged/);
    expect(logged).toMatch(/"BinlogGapFiles":2/);
    const listed = await runList(config, 'app');
    expect(listed.archive!.gaps).toHaveLength(1);
    expect(listed.archive!.gaps[0]).toMatchObject({ from: 'mariadb-bin.000003', to: 'mariadb-bin.000004', count: 2 });
    const verified = await runVerify(config, 'app', { progress: silentProgress });
    expect(verified.ok).toBe(false);
    expect(verified.archive!.problems.join('\n')).toMatch(/binlog gap: mariadb-bin\.\d+ to mariadb-bin\.\d+ \(2 files\) are missing/);

    // No restore crosses the gap: the latest point is the newest dump, until the archive after the gap holds one.
    await runRestore(config, 'app', { to: target.url('across_gap'), latest: true, progress: silentProgress });
    expect(await ids('across_gap')).toEqual(range(1, 17));
    await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    await runRestore(config, 'app', { to: target.url('after_gap_dump'), latest: true, progress: silentProgress });
    expect(await ids('after_gap_dump')).toEqual(range(1, 20));
  });

  describe('into S3', () => {
    const s3 = useS3();

    it('streams into an S3 repository and restores to a position from it', async () => {
      const onS3 = writeConfig(tmp.path, 's3.yaml', {
        repository: s3.repository('binlog'),
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'mysql', url: source.url('app'), stream: { flushSeconds: 1 } } },
      }).config;
      await runBackup(onS3, 'app', { type: 'logical', progress: silentProgress });
      const run = streamInProcess(onS3, join(tmp.path, 's3-spool'));
      streamer = run;
      await source.sql("INSERT INTO ledger VALUES (21, 's3')", 'app');
      const at = await masterStatus();
      const expected = (await source.sql('SELECT GROUP_CONCAT(id ORDER BY id) FROM ledger', 'app')).split(',').map(Number);
      await source.sql("INSERT INTO ledger VALUES (22, 's3 later')", 'app');
      await source.sql('FLUSH BINARY LOGS');
      await waitDurable(await masterStatus(), onS3);
      await run.stop();
      streamer = undefined;
      await runRestore(onS3, 'app', { to: target.url('from_s3'), position: `${at.file}:${at.position}`, progress: silentProgress });
      expect(await ids('from_s3')).toEqual(expected);
      expect((await runVerify(onS3, 'app', { progress: silentProgress })).ok).toBe(true);
    });
  });

  describe('a different server behind the source', () => {
    const other = useMariadb({ settings: { server_id: 2 } });

    it('is refused before anything is streamed: logged as a gap and counted', async () => {
      await other.sql('CREATE DATABASE app');
      const moved = writeConfig(tmp.path, 'moved.yaml', {
        repository: `file://${tmp.path}/repo`,
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'mysql', url: other.url('app') } },
      }).config;
      const keys = join(tmp.path, 'repo/app/binlog/keys');
      const before = readdirSync(keys);
      const lines: string[] = [];
      await expect(runStream(moved, 'app', { spoolDir: join(tmp.path, 'moved-spool'), write: (l) => lines.push(l) })).rejects.toThrow(
        /^source 'app': the server \(2\) is not the one whose binlog the archive holds \(1\); nothing was streamed$/,
      );
      expect(lines.join('')).toMatch(/"level":"error","msg":"binlog gap: the server's identity changed \(archive: server 1; now: server 2\)/);
      expect(lines.join('')).toMatch(/"BinlogIdentityChanges":1/);
      expect(readdirSync(keys)).toEqual(before);
    });
  });

  describe('bad input: one line, nothing changed', () => {
    it('refuses to stream a server without log-bin and writes nothing', async () => {
      const nobin = writeConfig(tmp.path, 'nobin.yaml', {
        repository: `file://${tmp.path}/nobin-repo`,
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'mysql', url: target.url('') } },
      }).config;
      const failure = runStream(nobin, 'app', { spoolDir: join(tmp.path, 'nobin-spool'), write: () => undefined });
      await expect(failure).rejects.toThrow(UsageError);
      await expect(failure).rejects.toThrow(/^source 'app': the server has no binary log \(log_bin is OFF\), so there is nothing to stream; [^\n]*$/);
      expect(existsSync(join(tmp.path, 'nobin-repo')) ? readdirSync(join(tmp.path, 'nobin-repo')) : []).toEqual([]);
      expect(existsSync(join(tmp.path, 'nobin-spool'))).toBe(false);
    });

    it('refuses targets outside the window, before creating anything', async () => {
      for (const time of ['2099-01-01T00:00:00Z', '2001-01-01T00:00:00Z']) {
        const failure = runRestore(config, 'app', { to: target.url('out_of_range'), time, progress: silentProgress });
        await expect(failure).rejects.toThrow(RecoveryTargetOutOfRange);
        await expect(failure).rejects.toThrow(/^--time [^\n]* is outside the restorable window of source 'app' \([^\n]*\); see: tidemark list app$/);
      }
      await expect(runRestore(config, 'app', { to: target.url('out_of_range'), position: 'mariadb-bin.999999:4', progress: silentProgress })).rejects.toThrow(RecoveryTargetOutOfRange);
      await expect(runRestore(config, 'app', { to: target.url('out_of_range'), beforeDrop: 'app.never_dropped', progress: silentProgress })).rejects.toThrow(
        /no DROP TABLE, TRUNCATE or DROP DATABASE of that table/,
      );
      expect(await databaseExists('out_of_range')).toBe(false);
    });

    it('refuses a non-empty target and a wrong key', async () => {
      await target.sql('CREATE DATABASE busy');
      await target.sql('CREATE TABLE keep (id INT PRIMARY KEY); INSERT INTO keep VALUES (7)', 'busy');
      await expect(runRestore(config, 'app', { to: target.url('busy'), latest: true, progress: silentProgress })).rejects.toThrow(TargetNotEmpty);
      expect(await target.sql('SELECT GROUP_CONCAT(id) FROM keep', 'busy')).toBe('7');
      expect(await target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'busy'")).toBe('1');

      process.env.TIDEMARK_OTHER_KEY = 'another-key-that-is-long-enough-0123456789';
      const wrong = writeConfig(tmp.path, 'wrong.yaml', {
        repository: `file://${tmp.path}/repo`,
        encryption: { key: 'env:TIDEMARK_OTHER_KEY' },
        sources: { app: { engine: 'mysql', url: source.url('app') } },
      }).config;
      const c = committed.get(12)!.after;
      await expect(runRestore(wrong, 'app', { to: target.url('wrong_key'), position: `${c.file}:${c.position}`, progress: silentProgress })).rejects.toThrow(EncryptionKeyError);
      expect(await databaseExists('wrong_key')).toBe(false);
    });
  });
});
