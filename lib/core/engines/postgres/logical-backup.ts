import { linkedAbort } from '../../abort';
import { ToolFailed } from '../../errors';
import { formatBytes } from '../../format';
import { compressedOutput, type CompressedOutput } from '../../pipeline/compressed-output';
import { firstCause } from '../../pipeline/write-object';
import { withLargeOutputBuffer } from '../../process/tool';
import type { BackupManifest } from '../../repository/manifest';
import { allOrRelease } from '../../settle';
import type { EngineRun } from '../engine';
import { connectPg, PgToolSession } from './connection';
import { recordTableChecksums } from './logical-checksums';
import type { PgLogicalDetails } from './logical-details';
import { serverInfo } from './server-info';
import { postgresSource, sourceEndpoint } from './source';
import { pgBin, toolMajor } from './tools';

/**
 * Logical backup of one PostgreSQL database: roles (pg_dumpall --globals-only) and the database
 * (pg_dump), each written straight into zstd (the lean data plane) and from there encrypted into
 * the repository.
 *
 * Format: custom (-Fc) to stdout, not directory (-Fd -j N). The directory format needs local disk
 * for the whole dump before anything is uploaded, and the worker runs on small ephemeral storage;
 * its parallelism pays off only with several large tables, while here zstd already runs on every
 * core. The custom format streams in one pass with flat memory and disk, and pg_restore can still
 * pick single tables out of it. pg_dump's own compression is off (-Z0): zstd is faster and better.
 *
 * Consistency: we export a snapshot from our own REPEATABLE READ transaction and hand it to
 * pg_dump, so the recorded restore point (time and LSN) is exactly the data in the dump. A third
 * session imports the same snapshot and records per-table row counts and checksums for drills
 * (logical-checksums.ts); their failure is recorded and does not fail the backup.
 */
export async function backupPostgresLogical(run: EngineRun): Promise<BackupManifest> {
  const { repository, source, compression, progress, signal } = run;
  const ep = await sourceEndpoint(source, postgresSource(run.config));
  const what = `source '${source}'`;
  const pgDump = pgBin('pg_dump');

  // Start-up work runs side by side, because a nightly dump of a small database is mostly start-up:
  // the key check (scrypt or a KMS call), the connection, pg_dump's version and the password file.
  // Nothing is written to the repository before the key is known to be right and the source answered.
  const keyChecked = repository.prepareKeyCheck();
  keyChecked.catch(() => undefined); // awaited below; a failure elsewhere must not leave it unhandled
  const [client, dumpMajor, session] = await allOrRelease([connectPg(ep, what), toolMajor(pgDump), PgToolSession.open(ep)], [
    (c) => c.end().catch(() => undefined),
    undefined,
    (s) => s.close(),
  ]);
  // The source answered: the backup claims its place (a lease) while the snapshot is taken.
  const writerReady = keyChecked.then(async (keyCheck) => ({ keyCheck, writer: await repository.beginBackup(source, 'postgres', 'logical') }));
  writerReady.catch(() => undefined);
  const outputs: CompressedOutput[] = [];
  const checksumStop = linkedAbort(signal); // a failed backup stops its checksums after the current table
  try {
    const server = await serverInfo(client);
    if (dumpMajor < server.major) {
      throw new ToolFailed(
        `pg_dump ${dumpMajor} cannot dump ${what} (PostgreSQL ${server.major}): install the PostgreSQL ${server.major} client tools`,
      );
    }

    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The insert position, not the write position: with synchronous_commit off, commits the
    // snapshot sees can still sit in WAL buffers, and a PITR to the recorded LSN must include them.
    const { rows } = await client.query(`
      select pg_export_snapshot() as snapshot, now() as at,
             (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_insert_lsn() end)::text as lsn`);
    const snapshot: { snapshot: string; at: Date; lsn: string } = rows[0];
    const checksumConfig = run.config.drill?.tableChecksums;
    const checksums =
      checksumConfig === false
        ? Promise.resolve(undefined)
        : recordTableChecksums(ep, snapshot.snapshot, {
            signal: checksumStop.controller.signal,
            ...(checksumConfig?.exactMiB ? { exactBytes: checksumConfig.exactMiB * 1024 * 1024 } : {}),
            ...(checksumConfig?.sampleMiB ? { sampleBytes: checksumConfig.sampleMiB * 1024 * 1024 } : {}),
          }).then(
            (recorded) => ({ recorded }),
            (e: unknown) => ({ error: (e as Error).message }),
          );

    // The tools start now and read the catalog while the key check may still be running; their
    // output waits in the pipe until the writer is ready (or they are killed if it never is).
    const options = { env: session.env };
    const globals = compressedOutput(
      { command: pgBin('pg_dumpall'), args: ['--globals-only', '--no-role-passwords', '--no-password', '-l', ep.database], options },
      compression,
    );
    outputs.push(globals);
    const [dumpCommand, dumpArgs] = withLargeOutputBuffer(pgDump, ['--format=custom', '--compress=0', '--no-password', `--snapshot=${snapshot.snapshot}`]);
    const dump = compressedOutput({ command: dumpCommand, args: dumpArgs, options: { ...options, label: 'pg_dump' } }, compression, (n) =>
      progress.advance(n),
    );
    outputs.push(dump);
    const { keyCheck, writer } = await writerReady;
    await keyCheck.confirm(); // a new repository's marker
    progress.note(`backup ${writer.id}: ${what}, PostgreSQL ${server.version}, about ${formatBytes(server.estimatedBytes)} of tables`);

    // Roles and the database stream side by side; if either fails, the other is stopped.
    const stop = linkedAbort(signal);
    const failFast = <T>(p: Promise<T>) =>
      p.catch((e: unknown) => {
        stop.controller.abort(e);
        throw e;
      });
    progress.start('dump', server.estimatedBytes);
    const results = await Promise.allSettled([
      failFast(writer.writeCompressed('globals.sql', globals, { compression, signal: stop.controller.signal })),
      failFast(writer.writeCompressed('dump', dump, { compression, signal: stop.controller.signal })),
    ]);
    progress.stop();
    stop.dispose();
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    if (errors.length > 0) throw firstCause(errors);
    const checked = await checksums;
    if (!checked) progress.note('table checksums: off (drill.tableChecksums: false)');
    else if ('error' in checked) progress.note(`table checksums not recorded: ${checked.error}`);
    else progress.note(`table checksums: ${Object.keys(checked.recorded.tables).length} tables in ${checked.recorded.seconds.toFixed(1)} s`);
    const details: PgLogicalDetails = {
      kind: 'pg-logical',
      database: ep.database,
      format: 'pg_dump-custom',
      serverVersion: server.version,
      serverMajor: server.major,
      pgDumpMajor: dumpMajor,
      encoding: server.encoding,
      collate: server.collate,
      ctype: server.ctype,
      ...(!checked ? {} : 'error' in checked ? { tableChecksumsError: checked.error } : { tableChecksums: checked.recorded }),
    };
    return await writer.commit({ time: snapshot.at.toISOString(), lsn: snapshot.lsn }, details);
  } catch (e) {
    for (const o of outputs) o.output.destroy(); // kills tools that are still running
    checksumStop.controller.abort();
    await writerReady.catch(() => undefined); // let a key check in flight finish before we report
    throw e;
  } finally {
    checksumStop.dispose();
    await session.close();
    await client.end().catch(() => undefined);
  }
}
