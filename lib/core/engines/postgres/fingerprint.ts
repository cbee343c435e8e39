import type { Client } from 'pg';
import { connectPg, parsePostgresUrl, quoteIdent } from './connection';

/**
 * A content fingerprint of a database, for proving a restore equal to its source (tests, drills):
 * per table the row count and an order-independent sum of per-row hashes (duplicates count), the
 * last value of every sequence, and every large object. Equal fingerprints ⇒ equal data, up to
 * 64-bit hash collisions per row.
 */
export interface DatabaseFingerprint {
  /** "schema.table" → "rows:hashsum" */
  readonly tables: Readonly<Record<string, string>>;
  /** "schema.sequence" → last value (null when never used) */
  readonly sequences: Readonly<Record<string, string | null>>;
  /** "count:hashsum" over large objects' oid and contents */
  readonly largeObjects: string;
}

/**
 * How a row becomes 64 bits, by the name a record keeps (drill/checksums.ts): `hashtext` is
 * PostgreSQL's hashtextextended (seed 0) of the row's text, about a third of the cost of `md5`
 * (md5 of the same text, its first 64 bits), which backups recorded until 2026-12.
 */
export type RowHash = 'hashtext' | 'md5';

/**
 * The 64-bit hash (a bigint) of the row `t`, or of the text `of` when given. `(t.*)` is the whole
 * row even when a column is named t; md5 records were made from `t::text`, which such a column
 * shadows (those records cover that column only), and are repeated as they were made.
 */
export function rowHashOf(hash: RowHash, of?: string): string {
  if (hash === 'hashtext') return `hashtextextended(${of ?? '(t.*)::text'}, 0)`;
  return `('x' || substr(md5(${of ?? 't::text'}), 1, 16))::bit(64)::bigint`;
}

/**
 * The sum of the rows' hashes, as an aggregate over `t`. sum(bigint) is exact (a numeric result, a
 * 128-bit accumulator); md5 records cast each row to numeric first, and are repeated as they were made.
 */
export function rowHashSum(hash: RowHash): string {
  return `sum(${rowHashOf(hash)}${hash === 'md5' ? '::numeric' : ''})`;
}

/**
 * Row text depends on these (timestamptz on TimeZone, floats on extra_float_digits, …): a backup
 * and the drill that checks it must hash the same text, so both sessions set them.
 */
export const ROW_TEXT_SETTINGS = `set TimeZone = 'UTC'; set DateStyle = 'ISO, YMD'; set IntervalStyle = 'postgres'; set extra_float_digits = 3; set bytea_output = 'hex'`;

/** User tables and materialized views ("schema", "name"), in name order. */
export async function listUserTables(client: Client): Promise<{ schema: string; name: string }[]> {
  const { rows } = await client.query(`
    select n.nspname as schema, c.relname as name
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
       and n.nspname !~ '^pg_(toast|temp)'
     order by 1, 2`);
  return rows;
}

/**
 * Row count and order-independent hash sum of one table (duplicates count); with `sample`, the count
 * is of every row and the sum only of the rows the predicate keeps (a predicate on `t`).
 */
export async function tableRowHash(
  client: Client,
  schema: string,
  name: string,
  options: { hash?: RowHash; sample?: string; where?: string } = {},
): Promise<{ rows: string; sum: string }> {
  const sum = rowHashSum(options.hash ?? 'hashtext');
  const total = options.sample ? `coalesce(${sum} filter (where ${options.sample}), 0)` : `coalesce(${sum}, 0)`;
  // `where` limits the rows read (an index can serve it); `sample` only which of them are hashed.
  const where = options.where ? ` where ${options.where}` : '';
  const { rows } = await client.query(`select count(*)::text as n, ${total}::text as h from only ${quoteIdent(schema)}.${quoteIdent(name)} t${where}`);
  return { rows: rows[0].n, sum: rows[0].h };
}

/** Row count of one table, without hashing. */
export async function tableRowCount(client: Client, schema: string, name: string): Promise<string> {
  const { rows } = await client.query(`select count(*)::text as n from only ${quoteIdent(schema)}.${quoteIdent(name)} t`);
  return rows[0].n;
}

/** `hash`: hashtext unless a fingerprint kept from before (md5, e.g. a test fixture's) is compared. */
export async function fingerprintDatabase(client: Client, { hash = 'hashtext' }: { hash?: RowHash } = {}): Promise<DatabaseFingerprint> {
  const tables: Record<string, string> = {};
  for (const { schema, name } of await listUserTables(client)) {
    const { rows, sum } = await tableRowHash(client, schema, name, { hash });
    tables[`${schema}.${name}`] = `${rows}:${sum}`;
  }
  const { rows: seqs } = await client.query(`select schemaname, sequencename, last_value::text as v from pg_sequences order by 1, 2`);
  const sequences: Record<string, string | null> = {};
  for (const s of seqs) sequences[`${s.schemaname}.${s.sequencename}`] = s.v;
  const { rows: lo } = await client.query(`
    select count(*) as n, coalesce(sum(('x' || substr(md5(m.oid::text || md5(lo_get(m.oid))), 1, 16))::bit(64)::bigint::numeric), 0) as h
      from pg_largeobject_metadata m`);
  return { tables, sequences, largeObjects: `${lo[0].n}:${lo[0].h}` };
}

/** The fingerprint of the database a postgres:// URL names (its own connection, closed after). */
export async function fingerprintDatabaseAt(url: string, options: { hash?: RowHash } = {}): Promise<DatabaseFingerprint> {
  const client = await connectPg(parsePostgresUrl(url, 'fingerprint'), 'fingerprint');
  try {
    return await fingerprintDatabase(client, options);
  } finally {
    await client.end();
  }
}
