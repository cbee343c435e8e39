import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { comparePositions } from '../../lib/core/engines/mysql/binlog/names';
import { silentProgress as progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import { useMariadb } from '../harness/mariadb';
import { useS3 } from '../harness/s3';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { faultInjector, type FaultInjector } from './fault-injector';

/**
 * MariaDB through a faulty S3 (issue 11): at 5% injected faults logical backups and the binlog
 * archive complete and restore; during a hard outage the binlog streamer keeps what it received
 * and catches up afterwards without a gap; `--latest` then has every committed row.
 */
process.env.TIDEMARK_S3_STALL_SECONDS = '1';
jest.setTimeout(400_000);

describe('MariaDB backups and binlog streaming through a faulty S3', () => {
  const s3 = useS3();
  const source = useMariadb();
  const target = useMariadb({ binlog: false });
  const tmp = useTempDir('tidemark-faults-mysql-');
  let proxy: S3Proxy;
  let faults: FaultInjector;
  let config: TidemarkConfig;
  const stop = new AbortController();
  let streaming: Promise<void> | undefined;
  const log: string[] = [];
  let nextId = 1;

  /** n rows, each its own transaction (autocommit), through one client process. */
  const insert = async (n: number) => {
    const rows = Array.from({ length: n }, () => `INSERT INTO ledger VALUES (${nextId++}, REPEAT('x', 200));`);
    await source.sql(rows.join('\n'), 'app');
  };
  const masterStatus = async () => {
    const [file, position] = (await source.sql('SHOW MASTER STATUS')).split('\t');
    return { file, position: Number(position) };
  };
  async function waitDurable(): Promise<void> {
    const pos = await masterStatus();
    const store = (await Repository.open(config)).store;
    for (const deadline = Date.now() + 120_000; ; await sleep(250)) {
      const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      if (point?.binlog && comparePositions(point.binlog, pos) >= 0) return;
      if (Date.now() > deadline) throw new Error(`the archive did not reach ${pos.file}:${pos.position}`);
    }
  }

  beforeAll(async () => {
    faults = faultInjector({ rate: 0.05, seed: 4242 });
    proxy = await startS3Proxy(s3.endpoint, { onRequest: (r) => faults.hook(r) });
    config = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: { ...s3.repository('mysql'), endpoint: proxy.endpoint },
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: source.url('app'), stream: { flushSeconds: 1 } } },
    }).config;
    await source.sql('CREATE DATABASE app');
    await source.sql('CREATE TABLE ledger (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB', 'app');
    await insert(200);
    streaming = runStream(config, 'app', { spoolDir: join(tmp.path, 'spool'), signal: stop.signal, write: (l) => void log.push(l) });
    streaming.catch(() => undefined);
  });

  afterAll(async () => {
    stop.abort();
    await streaming?.catch(() => undefined);
    await proxy?.close();
  });

  it('logical backups and the binlog archive complete at 5% faults; a restore replays to the latest row', async () => {
    for (let i = 0; i < 6; i++) {
      await runBackup(config, 'app', { type: 'logical', progress });
      await insert(50);
    }
    await waitDurable();
    expect((await runList(config, 'app')).backups).toHaveLength(6);
    expect((await runVerify(config, 'app', { progress })).ok).toBe(true);
    await runRestore(config, 'app', { to: target.url('faulty'), latest: true, progress });
    expect(await target.sql('SELECT COUNT(*), MAX(id) FROM ledger', 'faulty')).toBe(`${nextId - 1}\t${nextId - 1}`);
    expect(Object.values(faults.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('during a hard outage the binlog streamer holds on and then catches up without a gap', async () => {
    const before = log.length;
    faults.outage('reset');
    await insert(100);
    await source.sql('FLUSH BINARY LOGS'); // a whole file completes while S3 is down
    await insert(100);
    await sleep(5_000);
    faults.outage('off');
    expect(log.slice(before).join('')).toMatch(/"level":"(error|warn)"/);
    await insert(10);
    await waitDurable();
    const listed = await runList(config, 'app');
    expect(listed.archive?.gaps).toEqual([]);
    await runRestore(config, 'app', { to: target.url('after_outage'), latest: true, progress });
    expect(await target.sql('SELECT COUNT(*), MAX(id) FROM ledger', 'after_outage')).toBe(`${nextId - 1}\t${nextId - 1}`);
  });
});
