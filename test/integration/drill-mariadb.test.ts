import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runStream } from '../../lib/core/commands/wal';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { Repository } from '../../lib/core/repository/repository';
import type { TidemarkConfigInput } from '../../lib/core/config/schema';
import { parseConfig } from '../../lib/core/config/load';
import type { DrillReport } from '../../lib/core/drill/report';
import { silentProgress as progress } from '../../lib/core/progress';
import { useMariadb } from '../harness/mariadb';
import { ROOT, useTempDir } from '../harness/tidemark';
import { testWorker } from '../harness/bundles';

jest.setTimeout(600_000);

/** A MariaDB logical drill through the worker entry: a fresh MariaDB in the scratch dir, CHECK TABLE, assertions, teardown. */
describe('drill worker: MariaDB logical', () => {
  const maria = useMariadb({ databases: ['shop'] });
  const tmp = useTempDir('tidemark-drill-maria-');

  beforeAll(async () => {
    chmodSync(tmp.path, 0o755);
    await maria.sql(
      `CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(40), amount DECIMAL(10,2)) ENGINE=InnoDB;
       INSERT INTO orders SELECT seq, CONCAT('order ', seq), seq * 1.5 FROM seq_1_to_5000;
       CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM; INSERT INTO legacy VALUES (1, 'old');`,
      'shop',
    );
  }, 300_000);

  it('passes: CHECK TABLE clean, the assertions hold, RTO/RPO measured, no server left, scratch removed', async () => {
    const config: TidemarkConfigInput = {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: {
        shop: {
          engine: 'mysql',
          url: maria.url('shop'),
          drill: {
            assertions: [
              { name: 'orders', sql: 'SELECT COUNT(*) FROM orders', expect: 5000 },
              { name: 'total', sql: 'SELECT SUM(amount) FROM orders', expect: '18753750.00' },
            ],
          },
        },
      },
    };
    const made = await runBackup(parseConfig(JSON.stringify(config), 'test'), 'shop', { type: 'logical', progress });
    const id = '20261201T100000Z-333333';
    // The checksums' own snapshot is the dump's: the same binlog position (no writes came between).
    const details = JSON.parse(readFileSync(join(tmp.path, 'repo', 'shop', 'backups', made.id, 'manifest.json'), 'utf8')).manifest.details;
    expect(details.tableChecksums).toMatchObject({ tables: { 'shop.orders': { rows: 5000 } }, skipped: { 'shop.legacy': 'MyISAM is not transactional' } });
    expect(details.tableChecksums.at.binlog).toEqual({ file: details.binlog.file, position: details.binlog.position });
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    const child = spawn(process.execPath, [testWorker(), 'drill', 'shop', '--id', id, '--target', 'latest', '--kind', 'restore', '--started-at', new Date().toISOString()], {
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
    const report = lines[lines.length - 1].report!;
    expect(stderr).toBe('');
    expect(report.error).toBeUndefined();
    expect(code).toBe(0);
    expect(report).toMatchObject({ ok: true, engine: 'mysql', method: 'mysql-logical', kind: 'restore', backupId: made.id, cleanedUp: true });
    const checks = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(checks['CHECK TABLE']).toMatchObject({ ok: true, detail: '2 tables of shop OK' });
    expect(checks['assertion: orders'].ok).toBe(true);
    expect(checks['assertion: total'].ok).toBe(true);
    expect(checks['recorded checksums']).toMatchObject({ ok: true, detail: `1 tables equal to backup ${made.id}'s record (1 exact); not checked: shop.legacy (MyISAM is not transactional)` });
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.rpoSeconds).toBeGreaterThanOrEqual(0);
    expect(existsSync(join(tmp.path, 'spool', 'drills', id))).toBe(false);
    expect(existsSync(join(tmp.path, 'repo', 'shop', 'drills', `${id}.json`))).toBe(true);
  });

  it('drill-check on an instance restored by someone else (RDS): CHECK TABLE and the assertions as the source’s user', async () => {
    const config: TidemarkConfigInput = {
      repository: `file://${tmp.path}/repo-check`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { shop: { engine: 'mysql', url: maria.url('shop'), drill: { assertions: [{ name: 'orders', sql: 'SELECT COUNT(*) FROM orders', expect: 5000 }] } } },
    };
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    const args = ['drill-check', 'shop', '--id', '20261201T100100Z-444444', '--endpoint', `127.0.0.1:${maria.port}`, '--target', 'latest', '--started-at', new Date().toISOString()];
    const child = spawn(process.execPath, [testWorker(), ...args], {
      cwd: ROOT,
      env: { ...base, TIDEMARK_CONFIG_JSON: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const [code] = (await once(child, 'close')) as [number];
    const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { msg: string; report?: DrillReport });
    const report = lines[lines.length - 1].report!;
    expect(code).toBe(0);
    expect(report).toMatchObject({ ok: true, engine: 'mysql', method: 'rds', cleanedUp: false });
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ['restored point', true],
      ['CHECK TABLE', true],
      ['assertion: orders', true],
    ]);
    // A snapshot has a history: its tables get the EXTENDED check (a drill's own fresh load does not need it).
    expect(report.checks.find((c) => c.name === 'CHECK TABLE')?.detail).toMatch(/ OK \(EXTENDED\)$/);
  });
});

/** A MariaDB point-in-time drill: the dump plus the streamed binlog replayed to a time between commits. */
describe('drill worker: MariaDB logical + binlog (PITR)', () => {
  const maria = useMariadb();
  const tmp = useTempDir('tidemark-drill-maria-pitr-');

  it('a drill at a time restores exactly the rows committed by then', async () => {
    chmodSync(tmp.path, 0o755);
    await maria.sql('CREATE DATABASE app');
    await maria.sql("CREATE TABLE ledger (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=InnoDB; INSERT INTO ledger VALUES (1, 'dumped'), (2, 'dumped')", 'app');
    const input: TidemarkConfigInput = {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: {
        app: {
          engine: 'mysql',
          url: maria.url('app'),
          stream: { flushSeconds: 1 },
          drill: { assertions: [{ name: 'rows at the target', sql: 'SELECT COUNT(*) FROM ledger', expect: 5 }] },
        },
      },
    };
    const config = parseConfig(JSON.stringify(input), 'test');
    await runBackup(config, 'app', { type: 'logical', progress });
    const stop = new AbortController();
    const streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'stream-spool'), signal: stop.signal, write: () => undefined });
    streaming.catch(() => undefined);
    try {
      // Binlog times are whole seconds: commits 150 ms into a second, the target the next second's start.
      await sleep(1150 - (Date.now() % 1000));
      await maria.sql("INSERT INTO ledger VALUES (3, 'streamed'), (4, 'streamed'), (5, 'streamed')", 'app');
      const target = new Date((Math.floor(Date.now() / 1000) + 1) * 1000).toISOString();
      await sleep(2150 - (Date.now() % 1000));
      await maria.sql("INSERT INTO ledger VALUES (6, 'too late')", 'app');
      const [file, position] = (await maria.sql('SHOW MASTER STATUS')).split('\t');
      const store = (await Repository.open(config)).store;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
        if (point?.binlog && comparePositions(point.binlog, { file, position: Number(position) }) >= 0) break;
        if (Date.now() > deadline) throw new Error('the binlog archive never reached the last commit');
        await sleep(200);
      }

      const base = { ...process.env };
      delete base.TIDEMARK_CONFIG;
      const id = '20261201T100200Z-555555';
      const child = spawn(process.execPath, [testWorker(), 'drill', 'app', '--id', id, '--target', target, '--kind', 'full', '--started-at', new Date().toISOString()], {
        cwd: ROOT,
        env: { ...base, TIDEMARK_CONFIG_JSON: JSON.stringify(input), TIDEMARK_SPOOL: join(tmp.path, 'spool') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      const [code] = (await once(child, 'close')) as [number];
      const lines = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { msg: string; report?: DrillReport });
      const report = lines[lines.length - 1].report!;
      expect(report.error).toBeUndefined();
      expect(code).toBe(0);
      expect(report).toMatchObject({ ok: true, method: 'mysql-logical', target: { kind: 'time', at: target }, cleanedUp: true });
      const checks = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      expect(checks['assertion: rows at the target'].ok).toBe(true);
      expect(checks['restored point'].ok).toBe(true);
      expect(checks['CHECK TABLE'].ok).toBe(true);
      expect(existsSync(join(tmp.path, 'spool', 'drills', id))).toBe(false);
    } finally {
      stop.abort();
      await streaming.catch(() => undefined);
    }
  });
});
