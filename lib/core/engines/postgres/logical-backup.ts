import type { Readable } from 'node:stream';
import type { Client } from 'pg';
import type { SourceConfig } from '../../config/schema';
import { ToolFailed } from '../../errors';
import { formatBytes } from '../../format';
import type { ZstdOptions } from '../../pipeline/zstd';
import { firstCause } from '../../pipeline/write-object';
import { runTool, toolOutput, withLargeOutputBuffer } from '../../process/tool';
import type { Progress } from '../../progress';
import type { BackupManifest } from '../../repository/manifest';
import type { Repository } from '../../repository/repository';
import { allOrRelease } from '../../settle';
import { resolveSecret } from '../../secrets';
import { connectPg, parsePostgresUrl, PgToolSession, withPassword, type PgEndpoint } from './connection';
import { pgBin } from './tools';

/**
 * Logical backup of one PostgreSQL database: roles (pg_dumpall --globals-only) and the database
 * (pg_dump), each streamed through compression and encryption into the repository.
 *
 * Format: custom (-Fc) to stdout, not directory (-Fd -j N). The directory format needs local disk
 * for the whole dump before anything is uploaded, and the worker runs on small ephemeral storage;
 * its parallelism pays off only with several large tables, while here zstd already runs on every
 * core. The custom format streams in one pass with flat memory and disk, and pg_restore can still
 * pick single tables out of it. pg_dump's own compression is off (-Z0): zstd is faster and better.
 *
 * Consistency: we export a snapshot from our own REPEATABLE READ transaction and hand it to
 * pg_dump, so the recorded restore point (time and LSN) is exactly the data in the dump.
 */

export type PostgresSource = Extract<SourceConfig, { engine: 'postgres' }>;

export interface PostgresLogicalBackupInput {
  readonly repository: Repository;
  readonly source: string;
  readonly config: PostgresSource;
  readonly compression: ZstdOptions;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
}

export interface PostgresServerInfo {
  readonly version: string;
  readonly major: number;
  readonly encoding: string;
  readonly collate: string;
  readonly ctype: string;
  /** Heap, TOAST and large-object bytes: what the dump will roughly stream (for the progress bar). */
  readonly estimatedBytes: number;
}

export async function sourceEndpoint(source: string, config: PostgresSource): Promise<PgEndpoint> {
  const ep = parsePostgresUrl(config.url, `sources.${source}.url`);
  return withPassword(ep, config.password ? await resolveSecret(config.password, `sources.${source}.password`) : undefined);
}

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

/** Major version of a PostgreSQL client tool ("pg_dump (PostgreSQL) 15.19 (Debian …)" → 15). */
export async function toolMajor(binary: string): Promise<number> {
  const out = await runTool(binary, ['--version']);
  const m = /\(PostgreSQL\)\s+(\d+)/.exec(out);
  if (!m) throw new ToolFailed(`cannot tell the version of ${binary} from: ${out.trim()}`);
  return Number(m[1]);
}

export async function backupPostgresLogical(input: PostgresLogicalBackupInput): Promise<BackupManifest> {
  const { repository, source, compression, progress, signal } = input;
  const ep = await sourceEndpoint(source, input.config);
  const what = `source '${source}'`;
  const pgDump = pgBin('pg_dump');

  // Start-up work runs side by side, because a nightly dump of a small database is mostly start-up:
  // the key check (scrypt or a KMS call), the connection, pg_dump's version and the password file.
  // Nothing is written to the repository before the key is known to be right and the source answered.
  const writerReady = repository
    .prepareKeyCheck()
    .then(async (keyCheck) => ({ keyCheck, writer: await repository.beginBackup(source, 'postgres', 'logical') }));
  writerReady.catch(() => undefined); // awaited below; a failure elsewhere must not leave it unhandled
  const [client, dumpMajor, session] = await allOrRelease([connectPg(ep, what), toolMajor(pgDump), PgToolSession.open(ep)], [
    (c) => c.end().catch(() => undefined),
    undefined,
    (s) => s.close(),
  ]);
  const dumps: Readable[] = [];
  try {
    const server = await serverInfo(client);
    if (dumpMajor < server.major) {
      throw new ToolFailed(
        `pg_dump ${dumpMajor} cannot dump ${what} (PostgreSQL ${server.major}): install the PostgreSQL ${server.major} client tools`,
      );
    }

    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query(`
      select pg_export_snapshot() as snapshot, now() as at,
             (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text as lsn`);
    const snapshot: { snapshot: string; at: Date; lsn: string } = rows[0];

    // The tools start now and read the catalog while the key check may still be running; their
    // output waits in the pipe until the writer is ready (or they are killed if it never is).
    const env = session.env;
    const globals = toolOutput(pgBin('pg_dumpall'), ['--globals-only', '--no-role-passwords', '--no-password', '-l', ep.database], { env });
    const dump = toolOutput(
      ...withLargeOutputBuffer(pgDump, ['--format=custom', '--compress=0', '--no-password', `--snapshot=${snapshot.snapshot}`]),
      { env, label: 'pg_dump' },
    );
    dumps.push(globals, dump);
    const { keyCheck, writer } = await writerReady;
    await keyCheck.confirm(); // a new repository's marker
    progress.note(`backup ${writer.id}: ${what}, PostgreSQL ${server.version}, about ${formatBytes(server.estimatedBytes)} of tables`);

    // Roles and the database stream side by side; if either fails, the other is stopped.
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal?.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const failFast = <T>(p: Promise<T>) =>
      p.catch((e: unknown) => {
        stop.abort(e);
        throw e;
      });
    progress.start('dump', server.estimatedBytes);
    const results = await Promise.allSettled([
      failFast(writer.writeObject('globals.sql', globals, { compression, signal: stop.signal })),
      failFast(writer.writeObject('dump', dump, { compression, signal: stop.signal, onPlainBytes: (n) => progress.advance(n) })),
    ]);
    progress.stop();
    signal?.removeEventListener('abort', onAbort);
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    if (errors.length > 0) throw firstCause(errors);
    return await writer.commit(
      { time: snapshot.at.toISOString(), lsn: snapshot.lsn },
      {
        database: ep.database,
        format: 'pg_dump-custom',
        serverVersion: server.version,
        serverMajor: server.major,
        pgDumpMajor: dumpMajor,
        encoding: server.encoding,
        collate: server.collate,
        ctype: server.ctype,
      },
    );
  } catch (e) {
    for (const d of dumps) d.destroy(); // kills a tool that is still running
    await writerReady.catch(() => undefined); // let a key check in flight finish before we report
    throw e;
  } finally {
    await session.close();
    await client.end().catch(() => undefined);
  }
}

