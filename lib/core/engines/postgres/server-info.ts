import type { Client } from 'pg';

export interface PostgresServerInfo {
  readonly version: string;
  readonly major: number;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  /** Heap, TOAST and large-object bytes: what a dump will roughly stream (for the progress bar). */
  readonly estimatedBytes: number;
}

/** The server's version and the current database's encoding, locale and size. */
export async function serverInfo(client: Client): Promise<PostgresServerInfo> {
  const { rows } = await client.query(`
    select current_setting('server_version') as version,
           current_setting('server_version_num')::int / 10000 as major,
           pg_encoding_to_char(d.encoding) as encoding, d.datcollate as collate, d.datctype as ctype,
           (select coalesce(sum(pg_table_size(c.oid)), 0) from pg_class c where c.relkind in ('r', 'm'))
             + (select pg_table_size('pg_largeobject')) as estimated
      from pg_database d where d.datname = current_database()`);
  const r = rows[0];
  return {
    version: r.version,
    major: Number(r.major),
    encoding: r.encoding,
    collate: r.collate,
    ctype: r.ctype,
    estimatedBytes: Number(r.estimated),
  };
}
