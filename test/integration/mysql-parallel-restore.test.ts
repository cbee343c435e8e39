import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import { loadDumpInParallel } from '../../lib/core/engines/mysql/parallel-load';
import { mysqlBin } from '../../lib/core/engines/mysql/tools';
import { IntegrityError, UsageError } from '../../lib/core/errors';
import { runTool } from '../../lib/core/process/tool';
import { silentProgress } from '../../lib/core/progress';
import type { ThrowawayMariadb } from '../../lib/local/throwaway-mariadb';
import { useMariadb } from '../harness/mariadb';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * The dump loaded through several connections (parallel-load.ts). `big` needs several INSERT
 * statements (~1 MiB each), so its rows really spread over the connections; its BEFORE INSERT
 * trigger rewrites every row it sees, so a trigger created before the last row was loaded shows in
 * the data; the view, routine and event must come after all tables; the foreign key points at a
 * table that sorts later.
 */
const SAMPLE = `
SET FOREIGN_KEY_CHECKS = 0;
CREATE TABLE big (id INT PRIMARY KEY, parent INT, note VARCHAR(300), KEY (parent), FOREIGN KEY (parent) REFERENCES zparent (id)) ENGINE=InnoDB;
CREATE TABLE zparent (id INT PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO zparent SELECT seq FROM seq_1_to_10;
INSERT INTO big SELECT seq, 1 + seq % 10, CONCAT('row ', seq, ' ', REPEAT(SHA2(seq, 256), 4)) FROM seq_1_to_16000;
CREATE TRIGGER big_bi BEFORE INSERT ON big FOR EACH ROW SET NEW.note = 'written by the trigger';
CREATE TABLE nokey (v VARCHAR(20)) ENGINE=InnoDB;
INSERT INTO nokey VALUES ('a'), ('b'), ('a');
CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM;
INSERT INTO legacy SELECT seq, REPEAT('m', 200) FROM seq_1_to_8000;
CREATE VIEW big_per_parent AS SELECT parent, COUNT(*) AS n FROM big GROUP BY parent;
CREATE VIEW on_view AS SELECT MAX(n) AS most FROM big_per_parent;
DELIMITER $$
CREATE PROCEDURE touch_big() BEGIN UPDATE big SET note = note WHERE id = 1; END$$
DELIMITER ;
CREATE EVENT later ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00' DO DELETE FROM big WHERE id < 0;
`;

async function picture(server: ThrowawayMariadb, db: string): Promise<string> {
  const q = (sql: string) => server.sql(sql, db);
  return [
    (await q('CHECKSUM TABLE big, zparent, nokey, legacy EXTENDED')).split(`${db}.`).join(''),
    await q("SELECT COUNT(*), SUM(note = 'written by the trigger') FROM big"),
    await q('SELECT * FROM on_view'),
    await q('SELECT v, COUNT(*) FROM nokey GROUP BY v ORDER BY v'),
    await server.sql(`SELECT GROUP_CONCAT(CONCAT(TABLE_NAME, ':', TABLE_TYPE) ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '${db}'`),
    await server.sql(`SELECT GROUP_CONCAT(CONCAT(TRIGGER_NAME, ':', ACTION_STATEMENT)) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '${db}'`),
    await server.sql(`SELECT GROUP_CONCAT(ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '${db}'`),
    await server.sql(`SELECT GROUP_CONCAT(EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '${db}'`),
    (await q('SHOW CREATE TABLE big')).replace(/AUTO_INCREMENT=\d+ /, ''),
  ].join('\n');
}

describe('MySQL/MariaDB logical restore through several connections', () => {
  const source = useMariadb({ binlog: true });
  const target = useMariadb({ binlog: false, settings: { general_log: 1, log_output: 'TABLE' } });
  const tmp = useTempDir();
  let original: string;
  let config: ReturnType<typeof writeConfig>['config'];
  let backupId: string;

  beforeAll(async () => {
    await source.createDatabase('app');
    await source.sql(SAMPLE, 'app');
    original = await picture(source, 'app');
    config = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: source.url('app') } },
    }).config;
    backupId = (await runBackup(config, 'app', { type: 'logical', progress: silentProgress })).id;
  }, 120_000);

  it('restores tables, rows, triggers (after their rows), views, routines and events as one connection does, spreading a big table over three', async () => {
    await target.sql('TRUNCATE mysql.general_log');
    await runRestore(config, 'app', { to: target.url('three'), backup: backupId, parallel: 3, progress: silentProgress });
    expect(await picture(target, 'three')).toBe(original);
    expect(original).toMatch(/^16000\t0$/m); // the dump's rows, not the trigger's
    // big's INSERTs ran on more than one connection.
    const connections = await target.sql("SELECT COUNT(DISTINCT thread_id) FROM mysql.general_log WHERE command_type = 'Query' AND argument LIKE 'INSERT INTO `big`%'");
    expect(Number(connections)).toBeGreaterThan(1);

    await runRestore(config, 'app', { to: target.url('one'), backup: backupId, parallel: 1, progress: silentProgress });
    expect(await picture(target, 'one')).toBe(original);
  });

  it('fails with an IntegrityError on a flipped byte near the end, kills every connection and drops the database it created', async () => {
    const damaged = writeConfig(tmp.path, 'damaged.yaml', {
      repository: `file://${tmp.path}/damaged-repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: source.url('app') } },
    }).config;
    const { id } = await runBackup(damaged, 'app', { type: 'logical', progress: silentProgress });
    const path = join(tmp.path, 'damaged-repo/app/backups', id, 'dump');
    const bytes = readFileSync(path);
    bytes[bytes.length - 40] ^= 0x01;
    writeFileSync(path, bytes);
    await expect(runRestore(damaged, 'app', { to: target.url('damaged'), parallel: 2, progress: silentProgress })).rejects.toThrow(IntegrityError);
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'damaged'")).toBe('0');
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = 'damaged'")).toBe('0');
  });

  it('loads many tables through two connections without deadlocks (the first INSERT into an empty table runs alone)', async () => {
    // Into an empty InnoDB table with unique and foreign key checks off (the dump's header), MariaDB
    // inserts in bulk under a table lock; two first INSERTs at once deadlocked (ERROR 1213) in 6 of 8
    // loads of such a dump before the loader waited for a table's first INSERT. Small statements
    // (--net-buffer-length) make many per table, as a server with a small net_buffer_length does.
    await source.createDatabase('many');
    const tables = Array.from({ length: 30 }, (_, i) => `t${i}`);
    await source.sql(tables.map((t) => `CREATE TABLE ${t} (id INT PRIMARY KEY, body VARCHAR(80)) ENGINE=InnoDB; INSERT INTO ${t} SELECT seq, CONCAT(MD5(seq), MD5(seq * 7)) FROM seq_1_to_20000;`).join('\n'), 'many');
    const dump = await runTool(mysqlBin('dump'), [`--defaults-file=${source.defaultsFile}`, '--single-transaction', '--net-buffer-length=65536', '--skip-dump-date', 'many']);
    const sums = (server: ThrowawayMariadb, db: string) => server.sql(`CHECKSUM TABLE ${tables.join(', ')} EXTENDED`, db).then((out) => out.split(`${db}.`).join(''));
    for (const round of [1, 2, 3]) {
      await target.createDatabase(`many${round}`);
      const client = { command: mysqlBin('client'), args: [`--defaults-file=${target.defaultsFile}`, '--binary-mode', '-D', `many${round}`] };
      await loadDumpInParallel(Readable.from([Buffer.from(dump)]), { connections: 2, client });
      expect(await sums(target, `many${round}`)).toBe(await sums(source, 'many'));
    }
  }, 120_000);

  it('fails when --parallel is not a whole number of connections, before changing anything', async () => {
    await expect(runRestore(config, 'app', { to: target.url('bad'), parallel: 0, progress: silentProgress })).rejects.toThrow(
      new UsageError('--parallel 0: expected a whole number of connections from 1 to 64'),
    );
  });
});
