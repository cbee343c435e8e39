import type { Client } from 'pg';
import { throwIfAborted } from '../../abort';
import {
  CHECKSUM_METHOD_HASHTEXT,
  CHECKSUM_METHOD_MD5,
  DEFAULT_EXACT_BYTES,
  keyRanges,
  planTableHashing,
  recordedHashing,
  type TableChecksum,
  type TableChecksums,
  type KeyRange,
  type TableHashing,
} from '../../drill/checksums';
import { IntegrityError } from '../../errors';
import { connectPg, quoteIdent, type PgEndpoint } from './connection';
import { listUserTables, ROW_TEXT_SETTINGS, rowHashOf, tableRowCount, tableRowHash, type RowHash } from './fingerprint';

/**
 * Row counts and checksums of every table, in the dump's own snapshot (logical-backup.ts exports
 * it and pg_dump reads it; this session imports the same one), so they describe exactly the data
 * in the dump. They run beside pg_dump on their own connection; the plan per table (whole,
 * key sample, count only) is drill/checksums.ts's.
 */
export async function recordTableChecksums(
  ep: PgEndpoint,
  snapshot: string,
  options: { readonly exactBytes?: number; readonly sampleBytes?: number; readonly signal?: AbortSignal } = {},
): Promise<TableChecksums> {
  const started = process.hrtime.bigint();
  const exactBytes = options.exactBytes ?? DEFAULT_EXACT_BYTES;
  const client = await connectPg(ep, 'table checksums');
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, "''")}'`);
    await client.query(ROW_TEXT_SETTINGS);
    // Beside pg_dump the cores are taken: parallel workers would only take them from the dump.
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const shapes = await tableShapes(client);
    const tables: Record<string, TableChecksum> = {};
    const skipped: Record<string, string> = {};
    for (const shape of shapes) {
      throwIfAborted(options.signal);
      if (shape.unlogged) skipped[shape.name] = 'unlogged: physical backups and replicas restore it empty';
      else tables[shape.name] = await checksumTable(client, 'hashtext', shape.schema, shape.table, planTableHashing(shape, exactBytes, { sampleBytes: options.sampleBytes }));
    }
    await client.query('COMMIT');
    return {
      method: CHECKSUM_METHOD_HASHTEXT,
      exactBytes,
      tables,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      ...(Object.keys(skipped).length > 0 ? { skipped } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The same numbers on a restored database, each table hashed the way its record was made; tables
 * the record lacks are counted, so the comparison can name them.
 */
export async function restoredTableChecksums(client: Client, recorded: TableChecksums): Promise<Record<string, TableChecksum>> {
  const hash = rowHashOfMethod(recorded.method);
  await client.query(ROW_TEXT_SETTINGS);
  const out: Record<string, TableChecksum> = {};
  for (const { schema, name } of await listUserTables(client)) {
    const full = `${schema}.${name}`;
    if (recorded.skipped?.[full]) continue;
    const want = recorded.tables[full];
    out[full] = want ? await checksumTable(client, hash, schema, name, recordedHashing(want)) : { rows: Number(await tableRowCount(client, schema, name)) };
  }
  return out;
}

interface Shape {
  readonly schema: string;
  readonly table: string;
  readonly name: string;
  readonly bytes: number;
  readonly primaryKey: readonly string[];
  readonly integerKey: boolean;
  /** Unlogged: in a dump, but empty after any physical restore; left out so a cross-check does not fail on it. */
  readonly unlogged: boolean;
}

async function tableShapes(client: Client): Promise<Shape[]> {
  const { rows } = await client.query<{ schema: string; name: string; bytes: string; pk: string[] | null; pk_types: string[] | null; unlogged: boolean }>(`
    select n.nspname as schema, c.relname as name, pg_table_size(c.oid)::text as bytes, c.relpersistence = 'u' as unlogged,
           (select array_agg(a.attname::text order by k.ord)
              from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
              join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
             where i.indrelid = c.oid and i.indisprimary) as pk,
           (select array_agg(a.atttypid::regtype::text order by k.ord)
              from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
              join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
             where i.indrelid = c.oid and i.indisprimary) as pk_types
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema')
       and n.nspname !~ '^pg_(toast|temp)'
     order by 1, 2`);
  const listed = new Set((await listUserTables(client)).map((t) => `${t.schema}.${t.name}`));
  return rows
    .filter((r) => listed.has(`${r.schema}.${r.name}`))
    .map((r) => ({
      schema: r.schema,
      table: r.name,
      name: `${r.schema}.${r.name}`,
      bytes: Number(r.bytes),
      primaryKey: r.pk ?? [],
      integerKey: r.pk_types?.length === 1 && ['smallint', 'integer', 'bigint'].includes(r.pk_types[0]),
      unlogged: r.unlogged,
    }));
}

/** The row hash a record's method names; a MariaDB record on a PostgreSQL drill is refused. */
function rowHashOfMethod(method: TableChecksums['method']): RowHash {
  if (method === CHECKSUM_METHOD_HASHTEXT) return 'hashtext';
  if (method === CHECKSUM_METHOD_MD5) return 'md5';
  throw new IntegrityError(`the backup's table checksums were made by ${method}, a MariaDB method: they cannot be checked on PostgreSQL`);
}

/**
 * Rows whose key falls in 1/modulus of the space: chosen by value, so any copy picks the same rows.
 * One integer column is taken as it is (free); any other key through the row hash of its text
 * (md5 records: its first 32 bits, as they were made).
 */
function samplePredicate(hash: RowHash, key: readonly string[], modulus: number, byValue: boolean): string {
  if (byValue) return `(t.${quoteIdent(key[0])} % ${modulus} = 0)`;
  const keyText = `row(${key.map((c) => `t.${quoteIdent(c)}`).join(', ')}, null)::text`;
  if (hash === 'md5') return `((('x' || substr(md5(${keyText}), 1, 8))::bit(32)::int & ${modulus - 1}) = 0)`;
  return `((${rowHashOf(hash, keyText)} & ${modulus - 1}) = 0)`;
}

/** The key ranges of a table (its key's smallest and largest value, read from the index). */
async function keyRangesOf(client: Client, schema: string, table: string, key: string, fraction: number): Promise<KeyRange[]> {
  const k = quoteIdent(key);
  const { rows } = await client.query<{ lo: string | null; hi: string | null }>(`select min(${k})::text as lo, max(${k})::text as hi from only ${quoteIdent(schema)}.${quoteIdent(table)}`);
  const { lo, hi } = rows[0];
  return lo === null || hi === null ? [] : keyRanges(BigInt(lo), BigInt(hi), fraction);
}

async function checksumTable(client: Client, hash: RowHash, schema: string, table: string, hashing: TableHashing): Promise<TableChecksum> {
  switch (hashing.mode) {
    case 'exact': {
      const { rows, sum } = await tableRowHash(client, schema, table, { hash });
      return { rows: Number(rows), sum };
    }
    case 'sample': {
      const { rows, sum } = await tableRowHash(client, schema, table, { hash, sample: samplePredicate(hash, hashing.key, hashing.modulus, hashing.byValue) });
      return { rows: Number(rows), sum, sample: { key: [...hashing.key], modulus: hashing.modulus, ...(hashing.byValue ? { by: 'value' as const } : {}) } };
    }
    case 'ranges': {
      const ranges = hashing.ranges ?? (await keyRangesOf(client, schema, table, hashing.key, hashing.fraction));
      // Each range through the primary key's index: nothing else of the table is read.
      const k = `t.${quoteIdent(hashing.key)}`;
      const where = ranges.length > 0 ? ranges.map(([lo, hi]) => `${k} between ${lo} and ${hi}`).join(' or ') : 'false';
      const { rows, sum } = await tableRowHash(client, schema, table, { hash, where });
      return { rows: Number(rows), sum, sample: { key: [hashing.key], ranges: [...ranges] } };
    }
    case 'count':
      return { rows: Number(await tableRowCount(client, schema, table)), countOnly: hashing.reason };
  }
}
