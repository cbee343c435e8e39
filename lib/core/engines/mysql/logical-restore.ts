import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { throwIfAborted } from '../../abort';
import { BackupNotFound, TargetNotEmpty, UsageError } from '../../errors';
import type { Catalog } from '../../repository/catalog';
import type { OpenedBackup } from '../../repository/repository';
import type { EngineRun, RestorePlan, RestoreRequest, RestoredTarget } from '../engine';
import { databaseTarget, withTargetPassword } from '../database-target';
import { describeRecoveryTarget, type RecoveryTarget } from '../recovery-target';
import { selectBackup } from '../select-backup';
import { applyBinlogReplay, planBinlogReplay, type BinlogReplayPlan } from './binlog/replay';
import { BinlogArchive } from './binlog/binlog-archive';
import { describeEndpoint, MysqlToolSession, parseMysqlUrl, quoteIdent, quoteLiteral, type MysqlEndpoint } from './connection';
import type { MysqlLogicalDetails } from './logical-details';
import { copyTableFromScratch, dropAbandonedScratch, holdServerLock, parseRestoreTable, scratchDatabaseName, tableExists } from './table-restore';
import { loadDumpInParallel } from './parallel-load';
import { mysqlBin } from './tools';
import type { TableName } from './binlog/decoded';

/** A restore of a mysql-logical backup, decided: the backup opened and authenticated, the target inspected. */
export interface MysqlLogicalRestorePlan extends RestorePlan {
  readonly backup: OpenedBackup;
  readonly details: MysqlLogicalDetails;
  readonly endpoint: MysqlEndpoint;
  /** The target database does not exist yet: the restore creates it (and drops it on failure). */
  readonly createsDatabase: boolean;
  /** The archived binlog to replay after the dump (staged and verified already), for targets past it. */
  readonly binlogReplay?: BinlogReplayPlan;
  /** --table: the whole restore goes into a scratch database, then this table is copied out (table-restore.ts). */
  readonly table?: TableName;
  /** Client connections the dump is loaded through (parallel-load.ts); 1: streamed through one client. */
  readonly connections: number;
}

/**
 * Connections a restore loads through unless told (--parallel): one per core, at most 4. The load
 * is bound by the server's statement execution, one core per connection; past the cores they only
 * contend, and the node process and the clients need some CPU as well.
 */
export function defaultConnections(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Targets only a binlog replay reaches; `latest` too, when the source has an archive. */
const REPLAY_TARGETS: ReadonlySet<RecoveryTarget['kind']> = new Set(['time', 'binlog', 'gtid', 'before-drop']);

async function hasBinlogArchive(run: EngineRun): Promise<boolean> {
  return (await new BinlogArchive(run.repository, run.source).objects.list()).length > 0;
}

/**
 * A table in the target database while a whole-database restore loads it: created before the dump,
 * dropped when the dump (and any binlog replay) is in. The dump cannot be one transaction, so a
 * restore that was killed leaves part of the database; this table says so to anyone who looks, and
 * the next restore refuses the target unless --force, naming it.
 */
export const UNFINISHED_RESTORE_TABLE = '_tidemark_restore_incomplete';

/** What a database holds, as a short description ('' when empty), or undefined when it does not exist. */
async function contents(session: MysqlToolSession, database: string): Promise<string | undefined> {
  const db = quoteLiteral(database);
  const rows = await session.query(
    `SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${db}),
            (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${db} AND TABLE_TYPE <> 'VIEW'),
            (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ${db}),
            (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${db}),
            (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ${db}),
            (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ${db})`,
    'restore target',
  );
  const [exists, ...counts] = rows[0].map(Number);
  if (!exists) return undefined;
  return ['tables', 'views', 'routines', 'triggers', 'events']
    .map((name, i) => [name, counts[i]] as const)
    .filter(([, n]) => n > 0)
    .map(([name, n]) => `${n} ${name}`)
    .join(', ');
}

/**
 * Every check a restore can make before it changes anything: the backup (chosen, its manifest
 * authenticated with its key) and the target (reachable, empty or --force).
 */
export async function planMysqlLogicalRestore(run: EngineRun, catalog: Catalog, request: RestoreRequest): Promise<MysqlLogicalRestorePlan> {
  const { repository, source } = run;
  const to = databaseTarget(request.to, 'mysql://user@host:port/database');
  const ep = await withTargetPassword(to, parseMysqlUrl(to.url, '--to'));
  if (!ep.database) throw new UsageError('--to: the URL names no database (mysql://user@host:port/database)');
  const accepts = (m: { details: { kind: string } }) => m.details.kind === 'mysql-logical';
  const archived = request.at.kind !== 'backup' && (REPLAY_TARGETS.has(request.at.kind) || request.at.kind === 'latest') && (await hasBinlogArchive(run));
  // Without an archive, time and latest targets are backups' own points (selectBackup says so).
  const chosen = archived ? undefined : selectBackup(catalog, request.at, source, { summary: 'logical (mysqldump)', accepts });

  const session = await MysqlToolSession.open(ep);
  let replayPlan: BinlogReplayPlan | undefined;
  try {
    const holds = await contents(session, ep.database);
    if (holds && !request.force && to.table === undefined && (await tableExists(session, ep.database, UNFINISHED_RESTORE_TABLE))) {
      throw new TargetNotEmpty(
        `target database ${describeEndpoint(ep)} holds an interrupted restore (table ${UNFINISHED_RESTORE_TABLE}); pass --force to replace it, or restore into a new database`,
      );
    }
    if (holds && !request.force && to.table === undefined) {
      throw new TargetNotEmpty(`target database ${describeEndpoint(ep)} is not empty (${holds}); restore into a new database or pass --force to replace the objects in the backup`);
    }
    let restorePoint = chosen?.restorePoint;
    let id = chosen?.id;
    if (archived) {
      const planned = await planBinlogReplay(repository, source, catalog.backups.filter(accepts), request.at, run.progress, run.signal);
      replayPlan = planned.replay;
      restorePoint = planned.restorePoint;
      id = planned.backup.id;
    }
    const backup = await repository.openBackup(source, { id: id! });
    const { manifest } = backup;
    const details = manifest.details;
    if (details.kind !== 'mysql-logical' || !manifest.objects.some((o) => o.name === 'dump')) {
      throw new BackupNotFound(`backup ${manifest.id} has no dump object; it is not a MySQL logical backup`);
    }
    const table = to.table === undefined ? undefined : parseRestoreTable(to.table, details.database, manifest.id);
    const tableExisted = table !== undefined && holds !== undefined && (await tableExists(session, ep.database, table.table));
    if (tableExisted && !request.force) {
      throw new TargetNotEmpty(`table ${table.table} already exists in ${describeEndpoint(ep)}; drop or rename it, or pass --force to replace it`);
    }
    return {
      method: 'mysql-logical',
      chain: [manifest],
      ...(replayPlan ? { replay: { from: manifest.restorePoint, to: request.at }, binlogReplay: replayPlan } : {}),
      target: to,
      force: request.force,
      restorePoint: restorePoint ?? manifest.restorePoint,
      backup,
      details,
      endpoint: ep,
      createsDatabase: holds === undefined,
      ...(table ? { table } : {}),
      connections: request.parallel ?? defaultConnections(),
    };
  } catch (e) {
    if (replayPlan) await rm(replayPlan.stagingDir, { recursive: true, force: true });
    throw e;
  } finally {
    await session.close();
  }
}

/**
 * The dump runs through the client statement by statement. It cannot be one transaction: every
 * CREATE TABLE commits implicitly. So a failure is undone the coarse way: a database the restore
 * created is dropped (with --force into an existing database, what was replaced stays replaced).
 * backup.read holds back the last chunk until every checksum has passed, and a failed read kills
 * the client before it sees end-of-input, so a damaged backup fails before the dump's end.
 * With more than one connection (--parallel, by default one per core up to 4) node reads the
 * verified plaintext itself (backup.read: its end only comes after every check) and parallel-load.ts
 * spreads it over several clients, each killed the same way on failure. That is the path whenever
 * there are two cores or more, whatever the dump's size: a small dump costs one more client and a
 * round trip per table, and every restore the tests make takes the path big ones take. One
 * connection keeps the lean data plane (zstd writes into the client, node sees compressed bytes).
 * With --table all of that happens in a scratch database (table-restore.ts), which is always
 * dropped; the target receives only the copy of the finished table, which is dropped again if the
 * copy fails. With --force the old table is dropped first, as the whole-database --force replaces
 * objects: a failed copy leaves it gone, and the message says why.
 */
export async function applyMysqlLogicalRestore(run: EngineRun, plan: MysqlLogicalRestorePlan): Promise<RestoredTarget> {
  const { progress, signal } = run;
  const { backup, endpoint: ep, createsDatabase, details, table } = plan;
  const { manifest } = backup;
  const dump = manifest.objects.find((o) => o.name === 'dump')!;
  throwIfAborted(signal);

  const createDatabase = async (session: MysqlToolSession, name: string) =>
    // The names were validated when the manifest was read (logical-details.ts).
    session.query(`CREATE DATABASE ${quoteIdent(name)} CHARACTER SET ${details.charset} COLLATE ${details.collation}`, 'restore target');
  const dropDatabase = async (session: MysqlToolSession, name: string) =>
    session
      .query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`, 'restore target')
      .catch((undo: unknown) => progress.note(`could not drop database ${name} after the restore: ${(undo as Error).message}`));

  /** The dump, then the binlog to the target, into `database` (the target, or the scratch one for --table). */
  const load = async (session: MysqlToolSession, database: string) => {
    throwIfAborted(signal);
    progress.start('restore', dump.storedBytes);
    try {
      const args = [...session.connectArgs, '--binary-mode', '--default-character-set=utf8mb4', '-D', database];
      const client = { command: mysqlBin('client'), args, options: { env: session.env } };
      const onStoredBytes = (n: number) => progress.advance(n);
      if (plan.connections > 1) {
        await loadDumpInParallel(await backup.read(dump, onStoredBytes), { connections: plan.connections, client, signal });
      } else {
        await backup.restoreInto(dump, client, { onStoredBytes, signal });
      }
    } finally {
      progress.stop();
    }
    if (plan.binlogReplay) {
      const { from, files } = plan.binlogReplay;
      progress.note(`replaying the binlog from ${from.file}:${from.position} (${files.length} file${files.length === 1 ? '' : 's'}) to ${describeRecoveryTarget(plan.replay!.to)}`);
      await applyBinlogReplay(plan.binlogReplay, session, database, signal);
    }
  };

  progress.note(`restoring backup ${manifest.id} (consistent at ${manifest.restorePoint.time}) into ${describeEndpoint(ep)}${table ? `, table ${table.table} only` : ''}`);
  const session = await MysqlToolSession.open(ep);
  try {
    if (table) {
      await dropAbandonedScratch(session, progress);
      const scratch = scratchDatabaseName();
      progress.note(`restoring the whole database into scratch database ${scratch} on the target server, to copy ${table.table} from it`);
      // Held until the scratch database is gone: a restore killed before that leaves it to the next one.
      const releaseLock = await holdServerLock(session, scratch);
      try {
        await createDatabase(session, scratch);
        await load(session, scratch);
        throwIfAborted(signal);
        if (createsDatabase) {
          progress.note(`creating database ${ep.database}`);
          await createDatabase(session, ep.database);
        }
        try {
          await copyTableFromScratch(session, scratch, ep.database, table, plan.force);
        } catch (e) {
          if (createsDatabase) await dropDatabase(session, ep.database);
          throw e;
        }
      } finally {
        await dropDatabase(session, scratch);
        await releaseLock();
      }
    } else {
      if (createsDatabase) {
        progress.note(`creating database ${ep.database}`);
        await createDatabase(session, ep.database);
      }
      try {
        const marker = quoteIdent(UNFINISHED_RESTORE_TABLE);
        await session.query(
          `CREATE TABLE IF NOT EXISTS ${marker} (backup VARCHAR(64) NOT NULL, started VARCHAR(32) NOT NULL); INSERT INTO ${marker} VALUES (${quoteLiteral(manifest.id)}, ${quoteLiteral(new Date().toISOString())})`,
          'restore target',
          ep.database,
        );
        await load(session, ep.database);
        throwIfAborted(signal);
        await session.query(`DROP TABLE ${marker}`, 'restore target', ep.database);
      } catch (e) {
        // A database the restore created goes; in one that existed (--force), the marker stays with the half-replaced objects.
        if (createsDatabase) await dropDatabase(session, ep.database);
        throw e;
      }
    }
  } finally {
    await session.close();
    if (plan.binlogReplay) await rm(plan.binlogReplay.stagingDir, { recursive: true, force: true });
  }
  return {
    target: describeEndpoint(ep),
    restorePoint: plan.restorePoint,
    ...(table ? { table: `${table.database}.${table.table}` } : {}),
    created: createsDatabase ? [`database ${ep.database}`] : [],
  };
}
