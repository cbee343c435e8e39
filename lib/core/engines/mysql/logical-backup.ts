import { basename } from 'node:path';
import { ToolFailed, UsageError } from '../../errors';
import { compressedOutput, type CompressedOutput } from '../../pipeline/compressed-output';
import { runTool, withLargeOutputBuffer } from '../../process/tool';
import type { TableChecksums } from '../../drill/checksums';
import type { BackupManifest } from '../../repository/manifest';
import type { EngineRun } from '../engine';
import { MysqlToolSession, quoteLiteral } from './connection';
import { keepDumpHead } from './dump-header';
import { recordMysqlChecksums } from './logical-checksums';
import type { MysqlLogicalDetails } from './logical-details';
import { mysqlSource, sourceEndpoint } from './source';
import { mysqlBin } from './tools';

interface DumpToolVersion {
  readonly version: string;
  readonly mariadb: boolean;
}

/** "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, …" or "mysqldump  Ver 8.0.36 for Linux …". */
async function dumpToolVersion(dump: string): Promise<DumpToolVersion> {
  const out = (await runTool(dump, ['--version'])).trim();
  const version = /Distrib\s+([^\s,]+)/.exec(out)?.[1] ?? /Ver\s+([^\s,]+)/.exec(out)?.[1] ?? out;
  return { version, mariadb: /mariadb/i.test(out) };
}

/**
 * How the dump tool is told to write the snapshot's binlog position as a comment: MySQL renamed
 * --master-data to --source-data in 8.0.26 (and writes CHANGE REPLICATION SOURCE TO …); MariaDB
 * keeps --master-data and adds the GTID with --gtid. MySQL's own GTID line (SET @@GLOBAL.GTID_PURGED)
 * is not a comment and would change the target server's state, so it is left out there.
 */
function positionArgs(tool: DumpToolVersion): string[] {
  if (tool.mariadb) return ['--master-data=2', '--gtid'];
  const [major, minor, patch] = tool.version.split(/[.-]/).map(Number);
  const renamed = major > 8 || (major === 8 && (minor > 0 || patch >= 26));
  return [renamed ? '--source-data=2' : '--master-data=2', '--set-gtid-purged=OFF'];
}

/**
 * Logical backup of one MySQL/MariaDB database: mariadb-dump (or mysqldump) writes SQL straight
 * into zstd (the lean data plane), and node encrypts the compressed stream into the repository.
 *
 * The database is dumped without --databases, so the dump holds no CREATE DATABASE or USE: it
 * restores into a database of any name, which the restore creates with the recorded character set.
 * --single-transaction makes InnoDB tables consistent with each other and with the recorded binlog
 * position; other engines (MyISAM, Aria, MEMORY) are not covered, so they are named on every run.
 */
export async function backupMysqlLogical(run: EngineRun): Promise<BackupManifest> {
  const { repository, source, compression, progress, signal } = run;
  const config = mysqlSource(run.config);
  const ep = await sourceEndpoint(source, config);
  const what = `source '${source}'`;
  const dumpTool = mysqlBin('dump');

  // The key check (scrypt or a KMS call) runs beside the source's first answer; nothing is written
  // to the repository before the key is known to be right and the source answered.
  const keyChecked = repository.prepareKeyCheck();
  keyChecked.catch(() => undefined); // awaited below; a failure elsewhere must not leave it unhandled
  const claim = () => keyChecked.then(async (keyCheck) => ({ keyCheck, writer: await repository.beginBackup(source, 'mysql', 'logical') }));
  let writerReady: ReturnType<typeof claim> | undefined;
  const session = await MysqlToolSession.open(ep);
  let output: CompressedOutput | undefined;
  let checksums: Promise<{ recorded: TableChecksums } | { error: string } | undefined> | undefined;
  try {
    const db = quoteLiteral(ep.database);
    // One client run for both (each costs a process and a connection): rows tagged by their SELECT.
    const [toolVersion, rows] = await Promise.all([
      dumpToolVersion(dumpTool),
      session.query(
        `SELECT 'info', VERSION(), @@log_bin, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, UTC_TIMESTAMP(6)
           FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${db};
         SELECT 'table', TABLE_NAME, ENGINE FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ${db} AND TABLE_TYPE = 'BASE TABLE' AND ENGINE <> 'InnoDB'
          ORDER BY TABLE_NAME;`,
        what,
      ),
    ]);
    const info = rows.filter((r) => r[0] === 'info').map((r) => r.slice(1));
    const tables = rows.filter((r) => r[0] === 'table').map((r) => r.slice(1));
    if (info.length === 0) throw new ToolFailed(`${what}: database ${ep.database} does not exist on ${ep.host}:${ep.port}`);
    const [serverVersion, logBin, charset, collation] = info[0];
    const flavor = /mariadb/i.test(serverVersion) ? 'mariadb' : 'mysql';
    const binlogOn = logBin === '1';
    const nonTransactionalTables = tables.map(([table, engine]) => ({ table, engine }));
    const named = nonTransactionalTables.map((t) => `${t.table} (${t.engine})`).join(', ');
    if (nonTransactionalTables.length > 0 && config.mysql?.refuseNonTransactional) {
      throw new UsageError(
        `${what}: ${named} cannot be made consistent by a single transaction, and sources.${source}.mysql.refuseNonTransactional is set: convert them to InnoDB (ALTER TABLE … ENGINE=InnoDB) or unset it`,
      );
    }
    if (nonTransactionalTables.length > 0) {
      progress.note(
        `warning: ${what}: ${named} ` +
          'cannot be made consistent by a single transaction; their rows may be from a slightly different moment. Convert them to InnoDB.',
      );
    }

    // The source answered: the backup claims its place (a lease) while the dump starts.
    writerReady = claim();
    writerReady.catch(() => undefined);

    // The snapshot's time: read just before the dump opens its transaction, so never after it.
    // (The binlog position below, which streaming will use, is exact.)
    const time = new Date(`${info[0][4].replace(' ', 'T')}Z`).toISOString();
    const args = [
      ...session.connectArgs,
      '--single-transaction',
      '--routines',
      '--triggers',
      '--events',
      '--add-drop-trigger',
      '--hex-blob',
      '--default-character-set=utf8mb4',
      '--skip-dump-date',
      // MariaDB reads the position from its snapshot (no global lock); dump-header.ts reads it back.
      ...(binlogOn ? positionArgs(toolVersion) : toolVersion.mariadb ? [] : ['--set-gtid-purged=OFF']),
      ep.database,
    ];
    // Table checksums for drills in a snapshot of their own beside the dump's (logical-checksums.ts).
    const checksumConfig = run.config.drill?.tableChecksums;
    checksums =
      checksumConfig === false
        ? Promise.resolve(undefined)
        : recordMysqlChecksums(session, ep.database, { signal, ...(checksumConfig?.exactMiB ? { exactBytes: checksumConfig.exactMiB * 1024 * 1024 } : {}) }).then(
            (recorded) => ({ recorded }),
            (e: unknown) => ({ error: (e as Error).message.split('\n')[0] }),
          );
    const [command, commandArgs] = withLargeOutputBuffer(dumpTool, args);
    output = compressedOutput({ command, args: commandArgs, options: { env: session.env, label: basename(dumpTool) } }, compression, (n) =>
      progress.advance(n),
    );
    const dump = keepDumpHead(output);
    const { keyCheck, writer } = await writerReady;
    await keyCheck.confirm(); // a new repository's marker
    progress.note(`backup ${writer.id}: ${what}, ${flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} ${serverVersion}, database ${ep.database}`);
    progress.start('dump');
    try {
      await writer.writeCompressed('dump', dump.compressed, { compression, signal });
    } finally {
      progress.stop();
    }
    const coordinates = binlogOn ? await dump.coordinates() : undefined;
    if (binlogOn && !coordinates) throw new ToolFailed(`${basename(dumpTool)} wrote no binlog position into the dump of ${what}`);
    const checked = await checksums;
    if (checked && 'recorded' in checked) {
      const at = checked.recorded.at?.binlog;
      const same = at && coordinates && at.file === coordinates.file && at.position === coordinates.position;
      progress.note(`table checksums: ${Object.keys(checked.recorded.tables).length} tables in ${checked.recorded.seconds.toFixed(1)} s${same ? ', at the dump\'s own position' : at ? `, at ${at.file}:${at.position} (writes came between it and the dump's snapshot)` : ''}`);
    } else if (checked) progress.note(`table checksums not recorded: ${checked.error}`);
    const details: MysqlLogicalDetails = {
      kind: 'mysql-logical',
      database: ep.database,
      format: 'mysqldump-sql',
      flavor,
      serverVersion,
      dumpTool: basename(dumpTool),
      dumpToolVersion: toolVersion.version,
      charset,
      collation,
      ...(coordinates ? { binlog: coordinates } : {}),
      nonTransactionalTables,
      ...(!checked ? {} : 'error' in checked ? { tableChecksumsError: checked.error } : { tableChecksums: checked.recorded }),
    };
    const restorePoint = coordinates ? { time, binlog: { file: coordinates.file, position: coordinates.position } } : { time };
    return await writer.commit(restorePoint, details);
  } catch (e) {
    output?.output.destroy(); // kills the tools if they still run
    await (writerReady ?? keyChecked).catch(() => undefined); // let a key check in flight finish before we report
    await checksums; // its client, stopped by the abort or ending on its own, is gone before we report (never rejects)
    throw e;
  } finally {
    await session.close();
  }
}
