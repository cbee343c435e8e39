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

const ROW_HASH = `sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric)`;

export async function fingerprintDatabase(client: Client): Promise<DatabaseFingerprint> {
  const { rows: relations } = await client.query(`
    select n.nspname as schema, c.relname as name
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
       and n.nspname !~ '^pg_(toast|temp)'
     order by 1, 2`);
  const tables: Record<string, string> = {};
  for (const { schema, name } of relations) {
    const { rows } = await client.query(`select count(*) as n, coalesce(${ROW_HASH}, 0) as h from only ${quoteIdent(schema)}.${quoteIdent(name)} t`);
    tables[`${schema}.${name}`] = `${rows[0].n}:${rows[0].h}`;
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
export async function fingerprintDatabaseAt(url: string): Promise<DatabaseFingerprint> {
  const client = await connectPg(parsePostgresUrl(url, 'fingerprint'), 'fingerprint');
  try {
    return await fingerprintDatabase(client);
  } finally {
    await client.end();
  }
}
