import { MysqlToolSession, parseMysqlUrl, quoteIdent, quoteLiteral, type MysqlEndpoint } from './connection';

/**
 * A content fingerprint of a MySQL/MariaDB database, for proving a restore equal to its source
 * (demo, benchmark, drills): per base table the row count, an order-independent sum of per-row
 * hashes over every column's bytes (duplicates count; generated columns included), and CHECKSUM
 * TABLE. Equal fingerprints ⇒ equal data, up to 64-bit hash collisions per row.
 *
 * TIMESTAMP columns are read in UTC (time_zone '+00:00'), so two servers or sessions in different
 * zones still agree on the same instants.
 */
export interface MysqlFingerprint {
  /** table → "rows:hashsum:checksum" */
  readonly tables: Readonly<Record<string, string>>;
}

export async function fingerprintMysqlDatabase(session: MysqlToolSession, database: string): Promise<MysqlFingerprint> {
  const db = quoteLiteral(database);
  const columns = await session.query(
    `SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c
       JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
      WHERE c.TABLE_SCHEMA = ${db} AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`,
    'fingerprint',
  );
  const byTable = new Map<string, string[]>();
  for (const [table, column] of columns) byTable.set(table, [...(byTable.get(table) ?? []), column]);
  const tables: Record<string, string> = {};
  for (const [table, cols] of byTable) {
    // Per column: NULL and '' differ (a marker), and a separator that no hex digit can fake.
    const row = cols.map((c) => `IFNULL(HEX(CAST(${quoteIdent(c)} AS BINARY)), '-')`).join(", ':', ");
    const t = quoteIdent(table);
    const [[count, sum]] = await session.query(
      `SET time_zone = '+00:00';
       SELECT COUNT(*), IFNULL(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT(${row})), 1, 15), 16, 10) AS DECIMAL(65, 0))), 0) FROM ${t}`,
      'fingerprint',
      database,
    );
    const [[, checksum]] = await session.query(`CHECKSUM TABLE ${t} EXTENDED`, 'fingerprint', database);
    tables[table] = `${count}:${sum}:${checksum}`;
  }
  return { tables };
}

/** The fingerprint of the database a mysql:// URL names. */
export async function fingerprintMysqlDatabaseAt(url: string | MysqlEndpoint): Promise<MysqlFingerprint> {
  const ep = typeof url === 'string' ? parseMysqlUrl(url, 'fingerprint') : url;
  const session = await MysqlToolSession.open(ep);
  try {
    return await fingerprintMysqlDatabase(session, ep.database);
  } finally {
    await session.close();
  }
}
