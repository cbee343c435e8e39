import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { TidemarkConfigSchema, type TidemarkConfigInput } from '../../lib/core/config/schema';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { silentProgress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { loadSampleMariadbData } from '../../lib/local/sample-mariadb';
import { useMariadb } from '../harness/mariadb';
import { ROOT, useTempDir } from '../harness/tidemark';
import { descendants, statOf, waitForExit } from '../harness/proc';
import { testWorker } from '../harness/bundles';

/**
 * The worker's `stream` command as the CDK app's Fargate streamer service runs it for a mysql
 * source: the Dockerfile's bundle in its own process, the config in TIDEMARK_CONFIG_JSON, the
 * password in the env var an ECS secret fills, stopped by SIGTERM (what ECS sends on a deploy);
 * and its `backup` command stopped the same way mid-dump.
 */
const PASSWORD = 'maria-secret-never-logged-51c2e8';

type LogLine = { level: string; msg: string; [key: string]: unknown };

describe('worker stream and backup <mysql source> (containers/worker/main.ts) against MariaDB', () => {
  const maria = useMariadb();
  const tmp = useTempDir('tidemark-worker-mysql-');
  let bundle: string;

  const masterStatus = async () => {
    const [file, position] = (await maria.sql('SHOW MASTER STATUS')).split('\t');
    return { file, position: Number(position) };
  };

  beforeAll(async () => {
    await maria.sql(`CREATE USER 'tm'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO 'tm'@'127.0.0.1';`);
    await maria.sql('CREATE DATABASE app');
    await maria.sql('CREATE TABLE ledger (id INT PRIMARY KEY, round INT NOT NULL) ENGINE=InnoDB', 'app');
    bundle = testWorker();
  }, 240_000);

  it('archives the binlog under load and across a rotation until SIGTERM, then exits 0 with everything received archived', async () => {
    const config: TidemarkConfigInput = {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      // No timed flush during the test: what the active file holds reaches the archive only through the clean stop.
      sources: { app: { engine: 'mysql', url: `mysql://tm@127.0.0.1:${maria.port}/app`, password: 'env:TIDEMARK_SECRET_APP', stream: { flushSeconds: 3600 } } },
    };
    const parsed = TidemarkConfigSchema.parse(config);
    process.env.TIDEMARK_SECRET_APP = PASSWORD;
    await runBackup(parsed, 'app', { type: 'logical', progress: silentProgress });

    const spool = join(tmp.path, 'spool');
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    const child: ChildProcess = spawn(process.execPath, [bundle, 'stream', 'app'], {
      cwd: ROOT,
      env: { ...base, TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_SECRET_APP: PASSWORD, TIDEMARK_SPOOL: spool },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = once(child, 'close') as Promise<[number | null]>;
    try {
      for (const deadline = Date.now() + 60_000; !stdout.includes('binlog streamer started'); await sleep(100)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the streamer did not start:\n${stdout}\n${stderr}`);
      }

      await sleep(1000); // past the streamer's first look at the spool (its one timed flush before the hour is up)
      // Load: 10 rounds of 20 single-row transactions, a rotation after round 5.
      for (let round = 1; round <= 10; round++) {
        await maria.sql(Array.from({ length: 20 }, (_, i) => `INSERT INTO ledger VALUES (${round * 100 + i}, ${round});`).join('\n'), 'app');
        if (round === 5) await maria.sql('FLUSH BINARY LOGS');
      }
      const end = await masterStatus();
      // Received: the spool's copy of the active file reaches the end (the tool writes as it reads).
      for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
        const size = (() => {
          try {
            return statSync(join(spool, 'app', 'binlog', end.file)).size;
          } catch {
            return 0;
          }
        })();
        if (size >= end.position) break;
        if (Date.now() > deadline) throw new Error(`the streamer did not receive ${end.file}:${end.position} (spool has ${size} bytes)`);
      }
      const store = new FileStore(join(tmp.path, 'repo'));
      const before = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      expect(before?.binlog === undefined || comparePositions(before.binlog, end) < 0).toBe(true);

      child.kill('SIGTERM');
      const [code] = await closed;
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const logs = stdout.split('\n').filter((l) => l && !l.startsWith('{"_aws"')).map((l) => JSON.parse(l) as LogLine);
      expect(logs.filter((l) => l.level === 'error')).toEqual([]);
      expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['binlog streamer started', 'binlog streamer stopped; everything received is archived']));
      expect(stdout).not.toContain(PASSWORD);

      const after = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      expect(comparePositions(after!.binlog!, end)).toBeGreaterThanOrEqual(0);
      // No event lost: the newest point restores every row.
      await runRestore(parsed, 'app', { to: `mysql://root@127.0.0.1:${maria.port}/app_copy`, latest: true, progress: silentProgress });
      expect(await maria.sql('SELECT COUNT(*), COUNT(DISTINCT round), MIN(id), MAX(id) FROM ledger', 'app_copy')).toBe('200\t10\t100\t1019');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed.catch(() => undefined);
    }
  });

  it('backup: SIGTERM while the dump streams exits 143, its tools and sessions gone, nothing committed', async () => {
    // What ECS sends a Fargate backup task it stops (issue 11); big enough to be still streaming.
    await maria.sql('CREATE DATABASE bulk');
    await loadSampleMariadbData(`mysql://root@127.0.0.1:${maria.port}/bulk`, { orders: 200_000 });
    const config: TidemarkConfigInput = {
      repository: `file://${tmp.path}/sigterm-repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { bulk: { engine: 'mysql', url: `mysql://tm@127.0.0.1:${maria.port}/bulk`, password: 'env:TIDEMARK_SECRET_BULK' } },
    };
    const base = { ...process.env };
    delete base.TIDEMARK_CONFIG;
    const child = spawn(process.execPath, [bundle, 'backup', 'bulk', '--type', 'logical'], {
      cwd: ROOT,
      env: { ...base, TIDEMARK_CONFIG_JSON: JSON.stringify(config), TIDEMARK_SECRET_BULK: PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    const closed = once(child, 'close') as Promise<[number | null]>;
    try {
      // While the dump tool runs (an upload in flight alone can outlast it: the dump may be done).
      let tools: number[] = [];
      const dumping = () => (tools = descendants(child.pid!)).some((pid) => /^(mariadb-dump|mysqldump)$/.test(statOf(pid)?.comm ?? ''));
      for (const deadline = Date.now() + 60_000; !dumping(); await sleep(10)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the dump never ran while the worker did:\n${stdout}`);
      }
      child.kill('SIGTERM');
      const [code] = await closed;
      expect(code).toBe(143);
      const logs = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as LogLine);
      expect(logs[logs.length - 1]).toMatchObject({ level: 'error', msg: 'stopped by SIGTERM: nothing was committed', source: 'bulk', type: 'logical' });
      expect(stdout).not.toContain(PASSWORD);
      expect((await runList(TidemarkConfigSchema.parse(config), 'bulk')).backups).toEqual([]);
      // mariadb-dump and zstd went with the worker, and so did their sessions on the server.
      expect(await waitForExit(tools, 5_000)).toEqual([]);
      const sessions = () => maria.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'tm'");
      for (let i = 0; i < 50 && (await sessions()) !== '0'; i++) await sleep(100);
      expect(await sessions()).toBe('0');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await closed.catch(() => undefined);
    }
  }, 120_000);
});
