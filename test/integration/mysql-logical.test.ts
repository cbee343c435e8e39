import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { fingerprintMysqlDatabaseAt } from '../../lib/core/engines/mysql/fingerprint';
import type { MysqlLogicalDetails } from '../../lib/core/engines/mysql/logical-details';
import { EncryptionKeyError, IntegrityError, TargetNotEmpty, UsageError } from '../../lib/core/errors';
import { silentProgress, type Progress } from '../../lib/core/progress';
import { Repository } from '../../lib/core/repository/repository';
import type { ThrowawayMariadb } from '../../lib/local/throwaway-mariadb';
import { useMariadb } from '../harness/mariadb';
import { useS3 } from '../harness/s3';
import { useTempDir, writeConfig } from '../harness/tidemark';

const EVERY_BYTE = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');

// MariaDB keeps identifiers in utf8mb3: 4-byte characters are possible in data only, so names use the BMP.
const SAMPLE = `
CREATE TABLE \`cüst€\` (
  id INT AUTO_INCREMENT PRIMARY KEY,
  \`nämé€\` VARCHAR(100) NOT NULL,
  amount DECIMAL(65,30),
  doc JSON,
  doubled INT AS (id * 2) VIRTUAL,
  tag VARCHAR(120) AS (CONCAT('c-', \`nämé€\`)) STORED
) ENGINE=InnoDB;
INSERT INTO \`cüst€\` (\`nämé€\`, amount, doc) VALUES
  ('🦊 fox', 12345678901234567890123456789012345.123456789012345678901234567890, '{"a": [1, 2, {"b": "😀"}]}'),
  ('Ærøskøbing', -0.000000000000000000000000000001, '[]'),
  ('plain', NULL, NULL);
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  cust_id INT NOT NULL,
  note VARCHAR(50),
  FOREIGN KEY (cust_id) REFERENCES \`cüst€\` (id)
) ENGINE=InnoDB;
CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = UPPER(NEW.note);
INSERT INTO orders (cust_id, note) VALUES (1, 'one'), (1, 'two'), (2, 'three'), (3, 'four'), (3, 'five');
DELETE FROM orders WHERE id = 5;
CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, fixed BINARY(4), vb VARBINARY(256)) ENGINE=InnoDB;
INSERT INTO blobs VALUES (1, UNHEX('${EVERY_BYTE}'), UNHEX('00FF0000'), UNHEX('${EVERY_BYTE}')), (2, '', '', ''), (3, NULL, NULL, NULL);
CREATE TABLE readings (id INT NOT NULL, y INT NOT NULL, v DOUBLE, PRIMARY KEY (id, y))
  PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (2000), PARTITION p1 VALUES LESS THAN MAXVALUE);
INSERT INTO readings VALUES (1, 1999, 0.5), (2, 2024, 1e300), (3, 2025, -2.5);
CREATE TABLE places (id INT PRIMARY KEY, pt POINT NOT NULL, area POLYGON, g GEOMETRY, SPATIAL INDEX (pt)) ENGINE=InnoDB;
INSERT INTO places VALUES
  (1, ST_GeomFromText('POINT(1.5 -2.25)'), ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))'), ST_GeomFromText('LINESTRING(0 0,1 1,2 0)')),
  (2, POINT(0, 0), NULL, ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1))'));
CREATE TABLE stamps (id INT PRIMARY KEY, at TIMESTAMP(6) NULL, dt DATETIME(6)) ENGINE=InnoDB;
SET time_zone = '+05:30';
INSERT INTO stamps VALUES (1, '2024-03-31 02:30:00.123456', '2024-03-31 02:30:00.123456'), (2, '1970-01-01 05:30:01', NULL);
SET time_zone = DEFAULT;
CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM;
INSERT INTO legacy VALUES (1, 'old');
CREATE VIEW big_orders AS SELECT o.id, c.\`nämé€\` AS who FROM orders o JOIN \`cüst€\` c ON c.id = o.cust_id;
DELIMITER $$
CREATE PROCEDURE add_order(IN c INT, IN n VARCHAR(50)) BEGIN INSERT INTO orders (cust_id, note) VALUES (c, n); END$$
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2$$
DELIMITER ;
CREATE EVENT purge_orders ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DO DELETE FROM orders WHERE id < 0;
`;

/** The harness's client runs with the server's default character set (utf8mb3): 4-byte names need utf8mb4. */
const sql = (server: ThrowawayMariadb, statement: string, db?: string) => server.sql(`SET NAMES utf8mb4;\n${statement}`, db);

/** Everything a restore must bring back, without the database's own name. */
async function fingerprint(maria: ThrowawayMariadb, db: string): Promise<Record<string, string>> {
  const server = { sql: (statement: string, database?: string) => sql(maria, statement, database) };
  const lit = `'${db}'`;
  const list = async (sql: string) => (await server.sql(sql)).split('\n').filter(Boolean);
  const strip = (s: string) => s.split(`\`${db}\`.`).join('');
  const out: Record<string, string> = {};
  for (const t of await list(`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${lit} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`)) {
    const q = `\`${t}\``;
    out[`table ${t}`] = strip(await server.sql(`SHOW CREATE TABLE ${q}`, db));
    out[`checksum ${t}`] = (await server.sql(`CHECKSUM TABLE ${q} EXTENDED`, db)).split('\t')[1];
    const columns = await list(`SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ${lit} AND TABLE_NAME = '${t}' ORDER BY ORDINAL_POSITION`);
    const row = columns.map((c) => `IFNULL(HEX(CAST(\`${c}\` AS BINARY)), 'NULL')`).join(', ');
    out[`rows ${t}`] = await server.sql(
      `SET SESSION group_concat_max_len = 1 << 30; SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(CONCAT_WS('|', ${row})) ORDER BY \`${columns[0]}\`)) FROM ${q}`,
      db,
    );
  }
  for (const v of await list(`SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ${lit} ORDER BY 1`)) {
    out[`view ${v}`] = strip(await server.sql(`SHOW CREATE VIEW \`${v}\``, db));
  }
  for (const [type, name] of (await list(`SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${lit} ORDER BY 2`)).map((l) => l.split('\t'))) {
    out[`${type} ${name}`] = strip((await server.sql(`SHOW CREATE ${type} \`${name}\``, db)).split('\t').slice(0, 3).join('\t'));
  }
  for (const t of await list(`SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${lit} ORDER BY 1`)) {
    out[`trigger ${t}`] = strip((await server.sql(`SHOW CREATE TRIGGER \`${t}\``, db)).split('\t').slice(0, 3).join('\t'));
  }
  for (const e of await list(`SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${lit} ORDER BY 1`)) {
    out[`event ${e}`] = strip((await server.sql(`SHOW CREATE EVENT \`${e}\``, db)).split('\t').slice(0, 4).join('\t'));
  }
  // Value-level views of the trickier types, for the tables present (--table restores one).
  const extras: Record<string, string> = {
    stamps: "SET time_zone = '+00:00'; SELECT id, UNIX_TIMESTAMP(at), dt FROM stamps ORDER BY id",
    places: 'SELECT id, ST_AsText(pt), ST_AsText(area), ST_AsText(g) FROM places ORDER BY id',
    blobs: 'SELECT id, LENGTH(b), MD5(b), HEX(fixed), MD5(vb) FROM blobs ORDER BY id',
    'cüst€': 'SELECT HEX(`nämé€`), CAST(amount AS CHAR), HEX(doc), doubled, tag FROM `cüst€` ORDER BY id',
  };
  for (const [table, query] of Object.entries(extras)) {
    if (out[`table ${table}`] !== undefined) out[table === 'blobs' ? 'blob' : table === 'cüst€' ? 'names' : table] = await server.sql(query, db);
  }
  return out;
}

const databaseExists = async (server: ThrowawayMariadb, db: string) =>
  (await server.sql(`SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}'`)) === '1';

function recordingProgress(): Progress & { notes: string[] } {
  const notes: string[] = [];
  return { ...silentProgress, note: (m) => notes.push(m), notes };
}

describe('MySQL/MariaDB logical backup → restore', () => {
  const source = useMariadb();
  const target = useMariadb({ binlog: false });
  const s3 = useS3();
  const tmp = useTempDir();
  let original: Record<string, string>;

  const sourceUrl = () => `mysql://tm@127.0.0.1:${source.port}/app`;
  const configFor = (name: string, extra: Partial<{ repository: unknown; key: string }> = {}): { path: string; config: TidemarkConfig } =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: (extra.repository as string) ?? `file://${tmp.path}/${name}-repo`,
      encryption: { key: extra.key ?? 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: sourceUrl(), password: 'env:TIDEMARK_TEST_MYSQL_PASSWORD' } },
    });

  beforeAll(async () => {
    process.env.TIDEMARK_TEST_MYSQL_PASSWORD = 'it\'s a "secret" \\ pw';
    // A user with a password: it must reach the tools through the option file only.
    await source.sql(`CREATE USER 'tm'@'localhost' IDENTIFIED BY 'it\\'s a "secret" \\\\ pw';
      CREATE USER 'tm'@'127.0.0.1' IDENTIFIED BY 'it\\'s a "secret" \\\\ pw';
      GRANT ALL PRIVILEGES ON *.* TO 'tm'@'localhost'; GRANT ALL PRIVILEGES ON *.* TO 'tm'@'127.0.0.1';`);
    await source.sql('CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
    await sql(source, SAMPLE, 'app');
    original = await fingerprint(source, 'app');
  }, 120_000);

  it.each([
    ['a folder', () => configFor('folder')],
    ['S3', () => configFor('s3', { repository: s3.repository('tidemark') })],
  ])('round-trips data, routines, views, triggers and events through %s into a database of another name', async (kind, cfg) => {
    const { config } = cfg();
    const progress = recordingProgress();
    const backup = await runBackup(config, 'app', { type: 'logical', progress });
    expect(progress.notes.join('\n')).toMatch(/warning: .*legacy \(MyISAM\).*single transaction/);

    const repository = await Repository.open(config);
    const [manifest] = (await repository.catalog('app')).backups;
    const details = manifest.details as MysqlLogicalDetails;
    expect(details).toMatchObject({ kind: 'mysql-logical', database: 'app', flavor: 'mariadb', charset: 'utf8mb4', nonTransactionalTables: [{ table: 'legacy', engine: 'MyISAM' }] });
    expect(details.binlog).toMatchObject({ file: expect.stringMatching(/^mariadb-bin\.\d+$/), position: expect.any(Number) });
    expect(manifest.restorePoint.binlog).toEqual({ file: details.binlog!.file, position: details.binlog!.position });
    const [[file, position]] = (await source.sql('SHOW MASTER STATUS')).split('\n').map((l) => l.split('\t'));
    expect(details.binlog).toMatchObject({ file, position: Number(position) }); // nothing written since
    expect(details.binlog!.gtid).toBe(await source.sql('SELECT @@GLOBAL.gtid_binlog_pos'));

    const db = `restored_${kind === 'S3' ? 's3' : 'folder'}`;
    await runRestore(config, 'app', { to: `${target.url(db)}`, backup: backup.id, progress: silentProgress });
    expect(await fingerprint(target, db)).toEqual(original);
    expect(original['table orders']).toMatch(/AUTO_INCREMENT=6/);
    expect(original.names).toContain('12345678901234567890123456789012345.123456789012345678901234567890\t');
    expect(original.names).toContain('-0.000000000000000000000000000001\t');
    expect(original['rows blobs']).toMatch(/^3\t[0-9a-f]{32}$/);
    const everyByteMd5 = createHash('md5').update(Buffer.from(EVERY_BYTE, 'hex')).digest('hex');
    expect(original.blob.split('\n')[0]).toBe(`1\t256\t${everyByteMd5}\t00FF0000\t${everyByteMd5}`);
    expect(original.blob.split('\n')[1]).toBe('2\t0\td41d8cd98f00b204e9800998ecf8427e\t00000000\td41d8cd98f00b204e9800998ecf8427e');
    expect(Object.keys(original).filter((k) => /^(PROCEDURE|FUNCTION|view|trigger|event) /.test(k))).toHaveLength(5);
    // Written under a session zone of +05:30: the instant survives, whatever the sessions' zones.
    expect(original.stamps).toBe(`1\t${Date.parse('2024-03-30T21:00:00Z') / 1000}.123456\t2024-03-31 02:30:00.123456\n2\t1.000000\tNULL`);
    expect(original.places.split('\n')[0]).toBe('1\tPOINT(1.5 -2.25)\tPOLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))\tLINESTRING(0 0,1 1,2 0)');
  });

  it('fingerprintMysqlDatabase (demo, bench, drills) agrees on a restored copy and tells one changed byte apart', async () => {
    const { config } = configFor('fingerprint');
    await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    await runRestore(config, 'app', { to: target.url('fp_copy'), progress: silentProgress });
    const original = await fingerprintMysqlDatabaseAt(source.url('app'));
    expect(Object.keys(original.tables)).toEqual(expect.arrayContaining(['blobs', 'cüst€', 'places', 'stamps', 'orders', 'readings']));
    expect(await fingerprintMysqlDatabaseAt(target.url('fp_copy'))).toEqual(original);
    await target.sql("UPDATE blobs SET b = CONCAT(LEFT(b, 255), X'00') WHERE id = 1", 'fp_copy');
    const changed = await fingerprintMysqlDatabaseAt(target.url('fp_copy'));
    expect(Object.keys(changed.tables).filter((t) => changed.tables[t] !== original.tables[t])).toEqual(['blobs']);
  });

  it('MariaDB 10.11 refuses 4-byte utf8mb4 characters in identifiers, so no backup can hold one: the matrix has them in data only', async () => {
    await expect(sql(source, 'CREATE TABLE `🦊` (id INT)', 'app')).rejects.toThrow(/Invalid utf8mb4 character string|Incorrect table name|1300|1103/);
  });

  it('--table restores one table from the dump (definition, rows, AUTO_INCREMENT, trigger, foreign key) and refuses a view', async () => {
    const { config } = configFor('table');
    await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    const result = await runRestore(config, 'app', { to: target.url('one_table'), table: 'app.orders', progress: silentProgress });
    expect(result.table).toBe('app.orders');
    const restored = await fingerprint(target, 'one_table');
    expect(Object.keys(restored).filter((k) => / orders$|orders_bi$/.test(k)).sort()).toEqual(['checksum orders', 'rows orders', 'table orders', 'trigger orders_bi']);
    for (const k of ['checksum orders', 'rows orders', 'table orders', 'trigger orders_bi']) expect({ k, v: restored[k] }).toEqual({ k, v: original[k] });
    await expect(runRestore(config, 'app', { to: target.url('one_table'), table: 'app.big_orders', force: true, progress: silentProgress })).rejects.toThrow(
      new UsageError('--table app.big_orders is a view, not a table; restore the whole database instead'),
    );
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tidemark\\_restore\\_%'")).toBe('0');

    // A copy that fails halfway (the target has a trigger of that name on another table) leaves no half table behind.
    await target.sql('CREATE DATABASE clash');
    await target.sql('CREATE TABLE other (id INT); CREATE TRIGGER orders_bi BEFORE INSERT ON other FOR EACH ROW SET NEW.id = NEW.id', 'clash');
    await expect(runRestore(config, 'app', { to: target.url('clash'), table: 'app.orders', progress: silentProgress })).rejects.toThrow(/Trigger .*already exists/);
    expect(await target.sql("SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'clash'")).toBe('other');
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tidemark\\_restore\\_%'")).toBe('0');
  });

  it('refuses a non-empty target without --force and changes nothing; replaces the objects with --force', async () => {
    const { config } = configFor('force');
    await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    await target.sql('CREATE DATABASE busy');
    await target.sql('CREATE TABLE keep (id INT PRIMARY KEY); INSERT INTO keep VALUES (7)', 'busy');
    await expect(runRestore(config, 'app', { to: target.url('busy'), progress: silentProgress })).rejects.toThrow(
      new TargetNotEmpty(`target database root@127.0.0.1:${target.port}/busy is not empty (1 tables); restore into a new database or pass --force to replace the objects in the backup`),
    );
    expect(await target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'busy'")).toBe('1');

    await runRestore(config, 'app', { to: target.url('busy'), force: true, progress: silentProgress });
    const restored = await fingerprint(target, 'busy');
    expect(restored['checksum cüst€']).toBe(original['checksum cüst€']);
    expect(await target.sql('SELECT id FROM keep', 'busy')).toBe('7');
  });

  it('fails with an IntegrityError on a flipped byte and drops the database it created', async () => {
    const { config } = configFor('damage');
    const { id } = await runBackup(config, 'app', { type: 'logical', progress: silentProgress });
    const path = join(tmp.path, 'damage-repo/app/backups', id, 'dump');
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    writeFileSync(path, bytes);
    await expect(runRestore(config, 'app', { to: target.url('damaged'), progress: silentProgress })).rejects.toThrow(IntegrityError);
    expect(await databaseExists(target, 'damaged')).toBe(false);
  });

  it('fails when the source refuses non-transactional tables, and stores nothing', async () => {
    const strict = writeConfig(tmp.path, 'strict.yaml', {
      repository: `file://${tmp.path}/strict-repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'mysql', url: sourceUrl(), password: 'env:TIDEMARK_TEST_MYSQL_PASSWORD', mysql: { refuseNonTransactional: true } } },
    }).config;
    await expect(runBackup(strict, 'app', { type: 'logical', progress: silentProgress })).rejects.toThrow(
      new UsageError("source 'app': legacy (MyISAM) cannot be made consistent by a single transaction, and sources.app.mysql.refuseNonTransactional is set: convert them to InnoDB (ALTER TABLE … ENGINE=InnoDB) or unset it"),
    );
    expect((await runList(strict, 'app')).backups).toEqual([]);
  });

  it('fails clearly with the wrong key and creates nothing', async () => {
    await runBackup(configFor('keys').config, 'app', { type: 'logical', progress: silentProgress });
    process.env.TIDEMARK_OTHER_KEY = 'another-key-that-is-long-enough-0123456789';
    const wrong = configFor('keys', { key: 'env:TIDEMARK_OTHER_KEY' }).config;
    await expect(runRestore(wrong, 'app', { to: target.url('wrong_key'), progress: silentProgress })).rejects.toThrow(EncryptionKeyError);
    expect(await databaseExists(target, 'wrong_key')).toBe(false);
  });
});
