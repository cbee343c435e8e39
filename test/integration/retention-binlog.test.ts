import { setTimeout as sleep } from 'node:timers/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runRetention } from '../../lib/core/commands/retention';
import { runStream } from '../../lib/core/commands/wal';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { mysqlBinlogArchive } from '../../lib/core/engines/mysql/binlog/binlog-method';
import { inventoryOf } from '../../lib/core/engines/mysql/binlog/inventory';
import { comparePositions, parseArchiveName, parseBinlogFile } from '../../lib/core/engines/mysql/binlog/names';
import { silentProgress as progress } from '../../lib/core/progress';
import { openStore } from '../../lib/core/repository/open-store';
import { Repository } from '../../lib/core/repository/repository';
import { useMariadb } from '../harness/mariadb';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Retention over MySQL dumps made through the real backup path and a binlog archive streamed from
 * a real MariaDB: the dumps outside the policy go, the binlog before the kept dump's coordinates
 * goes, superseded partials go, the key epochs stay, and the kept dump still replays the binlog to
 * the newest row (--latest).
 */
describe('retention over MySQL dumps and the binlog archive', () => {
  const source = useMariadb();
  const target = useMariadb({ binlog: false });
  const tmp = useTempDir();

  const masterStatus = async () => {
    const [file, position] = (await source.sql('SHOW MASTER STATUS')).split('\t');
    return { file, position: Number(position) };
  };

  async function waitDurable(config: TidemarkConfig, pos: { file: string; position: number }): Promise<void> {
    const store = (await Repository.open(config)).store;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const point = await mysqlBinlogArchive.newestDurablePoint(store, 'app');
      if (point?.binlog && comparePositions(point.binlog, pos) >= 0) return;
      if (Date.now() > deadline) throw new Error(`the archive did not reach ${pos.file}:${pos.position}`);
      await sleep(200);
    }
  }

  it('keeps the binlog from the kept dump on, removes older files and superseded partials, and --latest still replays', async () => {
    const { config } = writeConfig(tmp.path, 'retention-binlog.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      retention: { logical: 1, archiveDays: 0, longTerm: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } } as never,
      sources: { app: { engine: 'mysql', url: source.url('app'), stream: { flushSeconds: 1 } } },
    });
    await source.sql('CREATE DATABASE app');
    await source.sql('CREATE TABLE ledger (id INT PRIMARY KEY) ENGINE=InnoDB', 'app');

    const abort = new AbortController();
    const streaming = runStream(config, 'app', { spoolDir: `${tmp.path}/spool`, signal: abort.signal, write: () => undefined });
    streaming.catch(() => undefined);
    let id = 0;
    const insert = async () => void (await source.sql(`INSERT INTO ledger VALUES (${++id})`, 'app'));
    // Three dumps, each in a binlog file of its own, rows before and after each; partials flushed on the way.
    const dumps: { id: string; file: string }[] = [];
    for (let round = 0; round < 3; round++) {
      await insert();
      await sleep(1200);
      await insert();
      await source.sql('FLUSH BINARY LOGS');
      await insert();
      const backup = await runBackup(config, 'app', { type: 'logical', progress });
      dumps.push({ id: backup.id, file: (await masterStatus()).file });
      await insert();
    }
    await sleep(1200);
    await insert();
    await waitDurable(config, await masterStatus());
    abort.abort();
    await streaming;

    const store = openStore(config.repository);
    const names = async () => (await store.list('app/binlog/')).objects.map((o) => o.key.slice('app/binlog/'.length));
    const before = await names();
    const inventory = inventoryOf(before.filter((n) => parseArchiveName(n)));
    expect(inventory.superseded.length).toBeGreaterThan(0);
    expect(inventory.gaps).toEqual([]);
    const keptFrom = parseBinlogFile(dumps[2].file)!.index;
    expect(inventory.files.some((f) => f.index < keptFrom)).toBe(true);

    // The plan: the two older dumps go; the binlog before the kept dump's file goes; superseded partials go.
    const dry = (await runRetention(config, 'app')).sources[0];
    expect(dry.keep.map((k) => k.id)).toEqual([dumps[2].id]);
    expect(dry.delete.filter((d) => d.what === 'backup').map((d) => d.id).sort()).toEqual([dumps[0].id, dumps[1].id]);
    const archiveKeys = dry.delete.filter((d) => d.what === 'archive').flatMap((d) => d.keys());
    for (const d of dry.delete) expect(d.reason.length).toBeGreaterThan(10);

    await runRetention(config, 'app', { apply: true });
    const after = await names();
    expect(before.filter((n) => !after.includes(n)).map((n) => `app/binlog/${n}`).sort()).toEqual([...archiveKeys].sort());
    // What is left: every file from the kept dump's on, only the object a replay reads per file, the key epochs.
    const left = inventoryOf(after.filter((n) => parseArchiveName(n)));
    expect(left.superseded).toEqual([]);
    expect(left.gaps).toEqual([]);
    expect(left.files[0].index).toBe(keptFrom);
    expect(after.filter((n) => n.startsWith('keys/'))).toEqual(before.filter((n) => n.startsWith('keys/')));
    expect((await runList(config, 'app')).backups.map((b) => b.id)).toEqual([dumps[2].id]);

    // The kept dump replays the remaining binlog to the newest row, and nothing more is due.
    await runRestore(config, 'app', { to: target.url('latest'), latest: true, progress });
    expect(Number(await target.sql('SELECT COUNT(*) FROM ledger', 'latest'))).toBe(id);
    expect((await runRetention(config, 'app')).sources[0].delete).toEqual([]);
  }, 180_000);
});
