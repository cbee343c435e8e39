import { compareChecksums, type TableChecksums } from '../../lib/core/drill/checksums';
import { MysqlToolSession, parseMysqlUrl } from '../../lib/core/engines/mysql/connection';
import { recordMysqlChecksums, restoredMysqlChecksums } from '../../lib/core/engines/mysql/logical-checksums';
import { useMariadb } from '../harness/mariadb';

/**
 * MariaDB's table checksums on a real server: what a backup records in its snapshot, the drill's
 * recount on the restored copy — which cuts a large table with one integer key into one key range
 * per client session and adds the parts up — is equal on the same data, and finds a change in
 * either range, a deleted row, and a row added below the smallest key (the ranges are drawn from
 * the copy's own smallest and largest keys, and the outer ones are open).
 */
describe('MariaDB table checksums (the restored side split into key ranges)', () => {
  const maria = useMariadb({ binlog: true });
  let session: MysqlToolSession;
  let recorded: TableChecksums;

  beforeAll(async () => {
    await maria.createDatabase('sums');
    // big: ~25 MiB on disk, over the 16 MiB from which the restored side splits; keys from -5 up, with holes.
    await maria.sql(
      `CREATE TABLE big (id BIGINT PRIMARY KEY, body VARCHAR(120)) ENGINE=InnoDB;
       INSERT INTO big SELECT CAST(seq AS SIGNED) * 3 - 5, CONCAT(MD5(seq), MD5(seq * 7), MD5(seq * 11)) FROM seq_1_to_200000;
       CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
       INSERT INTO small SELECT seq, CONCAT('v', seq) FROM seq_1_to_100;
       ANALYZE TABLE big, small;`,
      'sums',
    );
    session = await MysqlToolSession.open(parseMysqlUrl(maria.url('sums'), 'checksums test'));
    recorded = await recordMysqlChecksums(session, 'sums', { exactBytes: 256 * 1024 * 1024 });
  }, 120_000);
  afterAll(() => session?.close());

  const bigBytes = async () => Number(await maria.sql("SELECT DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'sums' AND TABLE_NAME = 'big'"));
  const recount = () => restoredMysqlChecksums(session, 'sums', recorded, 'sums');

  it('equals the record on the same data, every table exact', async () => {
    expect(await bigBytes()).toBeGreaterThan(16 * 1024 * 1024);
    expect(recorded.tables['sums.big']).toMatchObject({ rows: 200000, sum: expect.stringMatching(/^\d+$/) });
    const restored = await recount();
    expect(restored).toEqual(recorded.tables);
    expect(compareChecksums(recorded.tables, restored).ok).toBe(true);
  });

  it.each([
    ['a change in the lower range', 'UPDATE big SET body = UPPER(body) WHERE id = 1', 'UPDATE big SET body = LOWER(body) WHERE id = 1'],
    ['a change in the upper range', 'UPDATE big SET body = UPPER(body) WHERE id = 599992', 'UPDATE big SET body = LOWER(body) WHERE id = 599992'],
    ['a deleted row', 'DELETE FROM big WHERE id = 300001', "INSERT INTO big VALUES (300001, CONCAT(MD5(100002), MD5(100002 * 7), MD5(100002 * 11)))"],
    ['a row below the smallest key', "INSERT INTO big VALUES (-1000000, 'x')", 'DELETE FROM big WHERE id = -1000000'],
  ])('finds %s', async (_what, change, undo) => {
    await maria.sql(change, 'sums');
    try {
      const comparison = compareChecksums(recorded.tables, await recount());
      expect(comparison.ok).toBe(false);
      expect(comparison.differences.join('\n')).toContain('sums.big');
    } finally {
      await maria.sql(undo, 'sums');
    }
    expect(compareChecksums(recorded.tables, await recount()).ok).toBe(true);
  });
});
