import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { sleep, throwIfAborted } from '../../../abort';
import { RecoveryTargetOutOfRange, ToolFailed, UsageError } from '../../../errors';
import type { Progress } from '../../../progress';
import type { Catalog } from '../../../repository/catalog';
import type { BackupManifest } from '../../../repository/manifest';
import { childEnv } from '../../../secrets';
import { archiveFor, type ArchiveDescription, type ArchiveWindow } from '../../continuous-archive';
import type { EngineRun } from '../../engine';
import { describeRecoveryTarget, type RecoveryTarget } from '../../recovery-target';
import { freePort } from '../../../free-port';
import { parsePostgresUrl } from '../connection';
import { postgresSource } from '../source';
import type { DdlCommit } from '../wal-ddl';
import { WalArchive } from '../wal/wal-archive';
import { scanWalDdl } from '../wal/wal-ddl-scan';
import { WalPrefetcher } from '../wal/wal-prefetch';
import { parseLsn, segmentName, segmentOfLsn } from '../wal/wal-names';
import type { PgPhysicalDetails } from './details';
import { osUserIds, serverBinDir, startRestoredCluster, type RestoredCluster, type StartOptions } from './start-cluster';

/**
 * Point-in-time recovery of a physical backup: the base backup is assembled as for any restore,
 * then PostgreSQL replays the archived WAL up to the target. Replay never waits for a node process
 * per 16 MiB segment: while the server replays, this process runs a prefetcher that keeps the next
 * segments decrypted in a spool, and restore_command is a few lines of sh that take them from there.
 *
 * Targets: --latest (the newest durable WAL), --time, --lsn, --xid, and --before-drop schema.table,
 * which finds the commit that dropped the table's files in the WAL and stops just before it.
 */

/** What a replay needs, decided when the restore is planned. */
export interface PgReplay {
  readonly target: Exclude<RecoveryTarget, { kind: 'backup' | 'binlog' | 'gtid' }>;
  /** The run of archive the replay follows (its timeline, as in WAL file names). */
  readonly window: ArchiveWindow;
  /** The first segment after the base backup's own WAL. */
  readonly firstSegment: string;
  readonly segmentBytes: number;
  /** --before-drop: the drops in the WAL after the base backup, oldest first (found when planning). */
  readonly drops?: readonly DdlCommit[];
}

type ReplayTarget = PgReplay['target'];

function isReplayTarget(at: RecoveryTarget): at is ReplayTarget {
  return at.kind === 'latest' || at.kind === 'time' || at.kind === 'lsn' || at.kind === 'xid' || at.kind === 'before-drop';
}

const timelineOf = (w: ArchiveWindow): number => parseInt(w.timeline, 16);
const lsnOf = (m: BackupManifest): bigint => parseLsn(m.restorePoint.lsn ?? '0/0');

function windowsText(windows: readonly ArchiveWindow[]): string {
  return windows.map((w) => `${w.from} … ${w.to} (timeline ${timelineOf(w)}${w.fromLsn && w.toLsn ? `, ${w.fromLsn} … ${w.toLsn}` : ''})`).join('; ');
}

/**
 * The base backup and the replay for a target, or undefined when no replay is needed (a backup's
 * own point, or --latest of a source whose archive reaches no further than its newest backup).
 * Every refusal — no archive, a target outside every window, a gap — happens here.
 */
export async function planReplay(
  run: EngineRun,
  catalog: Catalog,
  at: RecoveryTarget,
): Promise<{ base: BackupManifest; replay: PgReplay } | undefined> {
  if (!isReplayTarget(at)) return undefined;
  const { source } = run;
  const registration = archiveFor(run.config);
  const physical = catalog.backups.filter((b) => b.details.kind === 'pg-physical');
  const archive = registration ? await registration.load() : undefined;
  const description = archive ? await archive.describe(run.repository.store, source) : undefined;
  if (!archive || !description || description.runs.length === 0) {
    if (at.kind === 'latest') return undefined;
    throw new RecoveryTargetOutOfRange(
      `${describeRecoveryTarget(at)}: source '${source}' has no archived WAL, so it restores only to its backups' points (see: tidemark list ${source}; archive WAL with tidemark stream or wal-push)`,
    );
  }
  const windows = archive.windows(description, physical).sort((a, b) => a.to.localeCompare(b.to));
  if (windows.length === 0) {
    if (at.kind === 'latest') {
      noteArchiveBeyond(run, description);
      return undefined;
    }
    throw new RecoveryTargetOutOfRange(
      `${describeRecoveryTarget(at)}: the archived WAL of source '${source}' does not continue from any physical backup (take one: tidemark backup ${source} --type full)`,
    );
  }
  const inWindow = (w: ArchiveWindow) => (b: BackupManifest) =>
    (b.details as PgPhysicalDetails).timeline <= timelineOf(w) && w.fromLsn !== undefined && lsnOf(b) >= parseLsn(w.fromLsn) && (!w.toLsn || lsnOf(b) <= parseLsn(w.toLsn));
  let window: ArchiveWindow | undefined;
  let candidates: (b: BackupManifest) => boolean = () => true;
  switch (at.kind) {
    case 'latest':
    case 'xid':
    case 'before-drop':
      window = windows[windows.length - 1];
      break;
    case 'time':
      window = [...windows].reverse().find((w) => w.from <= at.at && at.at <= w.to);
      candidates = (b) => b.restorePoint.time <= at.at;
      break;
    case 'lsn': {
      const lsn = parseLsn(at.lsn);
      window = [...windows].reverse().find((w) => w.fromLsn && w.toLsn && parseLsn(w.fromLsn) <= lsn && lsn <= parseLsn(w.toLsn));
      candidates = (b) => lsnOf(b) <= lsn;
      break;
    }
  }
  if (!window) {
    throw new RecoveryTargetOutOfRange(
      `${describeRecoveryTarget(at)} is outside the restorable window of source '${source}' (${windowsText(windows)}); see: tidemark list ${source}`,
    );
  }
  if (at.kind === 'latest') noteArchiveBeyond(run, description, window);
  const base = physical.filter(inWindow(window)).filter(candidates).pop();
  if (!base) throw new RecoveryTargetOutOfRange(`${describeRecoveryTarget(at)}: no physical backup of source '${source}' precedes it on timeline ${timelineOf(window)}`);
  if (at.kind === 'latest' && window.toLsn && base.restorePoint.lsn && parseLsn(window.toLsn) <= lsnOf(base)) return undefined;
  const wal = new WalArchive(run.repository, source);
  const segmentBytes = await wal.segmentBytes(await wal.list());
  if (!segmentBytes) throw new RecoveryTargetOutOfRange(`source '${source}': the WAL archive holds no segment`);
  const firstSegment = segmentName({ timeline: (base.details as PgPhysicalDetails).timeline, segno: segmentOfLsn(lsnOf(base), segmentBytes) }, segmentBytes);
  const replay: PgReplay = { target: at, window, firstSegment, segmentBytes };
  if (at.kind !== 'before-drop') return { base, replay };
  splitTable(at.table);
  run.progress.note(`looking for drops in the WAL archived after backup ${base.id}`);
  const drops = (await ddlCommitsAfter(run, replay, (base.details as PgPhysicalDetails).serverMajor)).filter(
    (c) => c.kind === 'drop' && parseLsn(c.lsn) > lsnOf(base),
  );
  if (drops.length === 0) {
    throw new RecoveryTargetOutOfRange(
      `--before-drop ${at.table}: no table was dropped in the WAL archived after backup ${base.id} (${base.restorePoint.time}); see: tidemark list ${source} --ddl`,
    );
  }
  return { base, replay: { ...replay, drops } };
}

/**
 * --latest replays to the end of the newest window: archive past a gap that no backup continues
 * from cannot be reached. Says so, with the gap, rather than let "latest" look like everything.
 */
function noteArchiveBeyond(run: EngineRun, description: ArchiveDescription, window?: ArchiveWindow): void {
  const newest = [...description.runs].sort((a, b) => a.end.time.localeCompare(b.end.time)).pop();
  if (!newest || (window && newest.end.time <= window.to)) return;
  const gaps = description.gaps.map((g) => (g.count > 0 ? `${g.from} to ${g.to} missing (${g.count} segment${g.count === 1 ? '' : 's'})` : `between ${g.from} and ${g.to}`));
  const reaches = `the WAL archive goes on to ${newest.end.time} (${newest.last})`;
  run.progress.note(
    window
      ? `warning: --latest stops at ${window.to}: ${reaches} past a gap replay cannot cross (${gaps.join('; ') || 'a gap'}), and no physical backup was taken after it; see: tidemark list ${run.source}`
      : `warning: --latest restores the newest backup only: ${reaches}, but no physical backup is where it continues from${gaps.length ? ` (gaps: ${gaps.join('; ')})` : ''}; see: tidemark list ${run.source}`,
  );
}

/** postgresql.auto.conf settings that stop replay at the target. */
function targetSettings(target: ReplayTarget | { kind: 'xid-before'; xid: string }): Record<string, string> {
  switch (target.kind) {
    case 'latest':
    case 'before-drop':
      return {};
    case 'time':
      // recovery_target_time does not take 'Z'; an explicit +00 offset it does.
      return { recovery_target_time: (target.exact ?? target.at).replace('T', ' ').replace(/Z$/, '+00'), recovery_target_inclusive: 'on' };
    case 'lsn':
      return { recovery_target_lsn: target.lsn, recovery_target_inclusive: 'on' };
    case 'xid':
      return { recovery_target_xid: target.xid, recovery_target_inclusive: 'on' };
    case 'xid-before':
      return { recovery_target_xid: target.xid, recovery_target_inclusive: 'off' };
  }
}

/**
 * The recovery settings of one start: earlier targets neutralized (startRestoredCluster appends, and
 * the last line of a setting wins), then the new ones. Order matters: PostgreSQL applies the lines in
 * file order and refuses to set one target while another is still set, so the empty ones go first.
 */
function recoverySettings(settings: Record<string, string>): Record<string, string> {
  const defaults: Record<string, string> = {
    recovery_target_time: '',
    recovery_target_lsn: '',
    recovery_target_xid: '',
    recovery_target_inclusive: 'on',
    recovery_target_action: 'pause',
  };
  for (const key of Object.keys(settings)) delete defaults[key];
  return { ...defaults, ...settings };
}

export interface ReplayContext {
  readonly run: EngineRun;
  readonly dataDir: string;
  readonly details: PgPhysicalDetails;
  readonly replay: PgReplay;
  /** --start: the server stays up on this port; otherwise a temporary one is used and stopped. A throwaway's keeps its pg_hba.conf. */
  readonly start?: StartOptions;
  readonly base: BackupManifest;
}

export interface ReplayOutcome {
  /** The point recovery stopped at, as far as the server tells. */
  readonly stoppedAt: { readonly lsn: string; readonly time?: string; readonly xid?: string };
  readonly cluster?: RestoredCluster;
  readonly fetched: { readonly files: number; readonly bytes: number; readonly seconds: number };
}

/** A connection to the restored server over its private socket (in the data directory, mode 0700). */
async function connectRestored(ctx: ReplayContext, port: number, database: string): Promise<Client> {
  const user = process.getuid?.() === 0 ? (ctx.start?.osUser ?? 'postgres') : userInfo().username;
  const client = new Client({ host: ctx.dataDir, port, user, database, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined); // the server going away is handled where queries fail
  await client.connect();
  return client;
}

/** Lets the restoring process in over the private socket, whatever the source's pg_hba.conf says. */
async function withLocalTrust(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'pg_hba.conf');
  const original = await readFile(path, 'utf8').catch(() => '');
  await writeFile(path, `# tidemark restore: the socket is in the data directory (0700), only its owner reaches it\nlocal all all trust\n${original}`);
  return () => writeFile(path, original);
}

async function logTail(cluster: { logFile: string } | undefined, dataDir: string): Promise<string> {
  const text = await readFile(cluster?.logFile ?? join(dataDir, 'log', 'tidemark-restore.log'), 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-6).join('\n');
}

const NOT_REACHED = /recovery ended before configured recovery target was reached/;

type RecoveryState = 'promoted' | 'paused' | 'ended-early';

/** Waits until recovery promoted the server, paused at the target, or the server stopped short of it. */
async function awaitRecovery(ctx: ReplayContext, cluster: RestoredCluster, progress: Progress, signal: AbortSignal): Promise<RecoveryState> {
  let client: Client | undefined;
  try {
    for (;;) {
      throwIfAborted(signal);
      try {
        client ??= await connectRestored(ctx, cluster.port, 'postgres');
        const { rows } = await client.query<{ recovering: boolean; paused: boolean; lsn: string | null }>(
          // pg_is_wal_replay_paused() fails once recovery is over: ask it only during recovery.
          `select pg_is_in_recovery() as recovering, case when pg_is_in_recovery() then pg_is_wal_replay_paused() else false end as paused,
                  pg_last_wal_replay_lsn()::text as lsn`,
        );
        if (!rows[0].recovering) return 'promoted';
        if (rows[0].paused) return 'paused';
        if (rows[0].lsn) progress.note(`replaying WAL: at ${rows[0].lsn}`);
      } catch (e) {
        await client?.end().catch(() => undefined);
        client = undefined;
        const tail = await logTail(cluster, ctx.dataDir);
        if (NOT_REACHED.test(tail)) return 'ended-early';
        if (/FATAL|PANIC/.test(tail) && !(await isRunning(ctx.dataDir, ctx.details.serverMajor))) {
          throw new ToolFailed(`recovery of ${ctx.dataDir} failed: ${tail.split('\n').filter((l) => /FATAL|PANIC/.test(l)).pop() ?? (e as Error).message}`);
        }
      }
      await sleep(250, signal);
    }
  } finally {
    await client?.end().catch(() => undefined);
  }
}

async function isRunning(dataDir: string, major: number): Promise<boolean> {
  try {
    await promisify(execFile)(join(serverBinDir(major), 'pg_ctl'), ['-D', dataDir, 'status'], { env: childEnv() });
    return true;
  } catch {
    return false;
  }
}

/** Where replay stopped, from the promoted server (or the paused standby). */
async function stoppedAt(ctx: ReplayContext, port: number): Promise<ReplayOutcome['stoppedAt']> {
  const client = await connectRestored(ctx, port, 'postgres');
  try {
    const { rows } = await client.query<{ lsn: string; time: Date | null }>(
      `select coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text as lsn, pg_last_xact_replay_timestamp() as time`,
    );
    return { lsn: rows[0].lsn, ...(rows[0].time ? { time: rows[0].time.toISOString() } : {}) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Drops (and truncates) in the archived WAL after the base backup, to the end of its run. */
export async function ddlCommitsAfter(run: EngineRun, replay: PgReplay, major: number): Promise<DdlCommit[]> {
  const archive = new WalArchive(run.repository, run.source);
  const inventory = await archive.inventory();
  const timeline = inventory?.timelines.find((t) => t.timeline === replay.window.timeline);
  const runOf = timeline?.runs.find((r) => r.last >= replay.firstSegment && r.first <= replay.firstSegment);
  if (!runOf) return [];
  const waldump = join(serverBinDir(major), 'pg_waldump');
  return scanWalDdl(archive, { first: replay.firstSegment, last: runOf.last, segmentBytes: replay.segmentBytes, waldump, signal: run.signal });
}

function splitTable(table: string): { schema: string; name: string } {
  const parts = table.split('.');
  if (parts.length > 2 || parts.some((p) => p === '')) throw new UsageError(`--before-drop ${table}: expected schema.table`);
  return parts.length === 2 ? { schema: parts[0], name: parts[1] } : { schema: 'public', name: parts[0] };
}

/**
 * Replays the archived WAL onto an assembled base backup up to the target. With --start the server
 * stays up, promoted; without it, it is started on a temporary port only for the replay and stopped
 * again, leaving a data directory that has reached the target and starts like any other.
 */
export async function replayTo(ctx: ReplayContext): Promise<ReplayOutcome> {
  const { run, dataDir, details, replay } = ctx;
  const { progress, signal } = run;
  const spoolDir = join(dataDir, 'tidemark_wal_spool');
  const osUser = process.getuid?.() === 0 ? osUserIds(ctx.start?.osUser ?? 'postgres') : undefined;
  const prefetcher = new WalPrefetcher(new WalArchive(run.repository, run.source), {
    spoolDir,
    ...(osUser ? { owner: osUser } : {}),
    onError: (file, e) => progress.note(`WAL ${file}: ${e.message}`),
  });
  const port = ctx.start?.port ?? (await freePort());
  const start = { ...ctx.start, port };
  const base = {
    restore_command: prefetcher.restoreCommand,
    recovery_target_timeline: String(timelineOf(replay.window)),
    hot_standby: 'on',
  };
  let restoreTrust: (() => Promise<void>) | undefined;
  let cluster: RestoredCluster | undefined;
  const launch = (settings: Record<string, string>) =>
    startRestoredCluster(dataDir, details.serverMajor, { ...start, settings: { ...base, ...recoverySettings(settings) }, recoverySignal: true, signal });
  /** Starts replay and waits for its outcome; a server that ended recovery short of the target before it even accepted connections counts as 'ended-early'. */
  const recover = async (settings: Record<string, string>): Promise<RecoveryState> => {
    try {
      cluster = await launch(settings);
    } catch (e) {
      if (e instanceof ToolFailed && NOT_REACHED.test(await logTail(undefined, dataDir))) return 'ended-early';
      throw e;
    }
    return awaitRecovery(ctx, cluster, progress, signal);
  };
  try {
    // Inside the try: the prefetcher's spool and spares go in the finally whatever fails first.
    await prefetcher.start(replay.firstSegment);
    if (!ctx.start?.throwaway) restoreTrust = await withLocalTrust(dataDir); // a throwaway's socket is trusted already
    if (replay.target.kind !== 'before-drop') {
      progress.note(`replaying WAL from ${replay.firstSegment} to ${describeRecoveryTarget(replay.target)}`);
      let state = await recover({ ...targetSettings(replay.target), recovery_target_action: 'promote' });
      if (state === 'ended-early') {
        // Every commit in the archive came at or before the target (the planner checked it lies in
        // the window): replaying to the archive's end is replaying to the target.
        if (replay.target.kind === 'xid') {
          throw new RecoveryTargetOutOfRange(
            `--xid ${replay.target.xid}: no commit of that transaction in the WAL archived after backup ${ctx.base.id} (${ctx.base.restorePoint.time}); a transaction committed before that backup needs --backup of an older one`,
          );
        }
        state = await recover({});
        if (state === 'ended-early') throw new ToolFailed(`recovery of ${dataDir} ended early: ${await logTail(cluster, dataDir)}`);
      }
      if (!cluster) throw new ToolFailed(`the restored server in ${dataDir} did not start`);
      if (state === 'paused') await resume(ctx, cluster, progress, signal);
    } else {
      cluster = await findDrop(ctx, replay.drops ?? [], splitTable(replay.target.table), launch, progress, signal);
    }
    const at = await stoppedAt(ctx, cluster!.port);
    if (!ctx.start) {
      await cluster.stop();
      cluster = undefined;
    }
    return { stoppedAt: at, ...(cluster ? { cluster } : {}), fetched: prefetcher.stats };
  } catch (e) {
    await cluster?.stop().catch(() => undefined);
    throw e;
  } finally {
    await prefetcher.stop();
    await restoreTrust?.();
    // The server rereads pg_hba.conf on reload only; one left running gets the source's rules back now.
    if (cluster && restoreTrust) await promisify(execFile)(join(serverBinDir(details.serverMajor), 'pg_ctl'), ['-D', dataDir, 'reload'], { env: childEnv() }).catch(() => undefined);
  }
}

/** Ends recovery paused at its target: the server promotes there (recovery_target_action = pause). */
async function resume(ctx: ReplayContext, cluster: RestoredCluster, progress: Progress, signal: AbortSignal): Promise<void> {
  const client = await connectRestored(ctx, cluster.port, 'postgres');
  try {
    await client.query('select pg_wal_replay_resume()');
  } finally {
    await client.end().catch(() => undefined);
  }
  const state = await awaitRecovery(ctx, cluster, progress, signal);
  if (state !== 'promoted') throw new ToolFailed(`the restored server in ${ctx.dataDir} did not finish recovery after it was resumed (${state})`);
}

/**
 * Stops before each drop in turn, paused, and asks the restored catalog whether the table that
 * drop removes is `table`: the WAL holds file and relation numbers, the name is only in the
 * catalog, also for a table created after the newest backup. The first match is the target; the
 * server then ends recovery there.
 */
async function findDrop(
  ctx: ReplayContext,
  candidates: readonly DdlCommit[],
  table: { schema: string; name: string },
  launch: (settings: Record<string, string>) => Promise<RestoredCluster>,
  progress: Progress,
  signal: AbortSignal,
): Promise<RestoredCluster> {
  const database = parsePostgresUrl(postgresSource(ctx.run.config).url, `source '${ctx.run.source}'`).database;
  let cluster: RestoredCluster | undefined;
  for (const candidate of candidates) {
    throwIfAborted(signal);
    progress.note(`replaying to just before transaction ${candidate.xid} (committed ${candidate.time}, dropped ${candidate.droppedRelations.length} relations)`);
    cluster = await launch({ ...targetSettings({ kind: 'xid-before', xid: candidate.xid }), recovery_target_action: 'pause' });
    const state = await awaitRecovery(ctx, cluster, progress, signal);
    if (state !== 'paused') throw new ToolFailed(`replay did not stop before transaction ${candidate.xid} (${state})`);
    const client = await connectRestored(ctx, cluster.port, database);
    let match = false;
    try {
      const { rows } = await client.query<{ oid: number; db: number }>(
        `select c.oid::int as oid, (select oid::int from pg_database where datname = current_database()) as db
           from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
        [table.schema, table.name],
      );
      match = rows.length > 0 && candidate.droppedRelations.some((d) => d.oid === rows[0].oid && d.database === rows[0].db);
    } finally {
      await client.end().catch(() => undefined);
    }
    if (match) {
      progress.note(`${table.schema}.${table.name} was dropped by transaction ${candidate.xid} at ${candidate.time}: recovery ends just before it`);
      await resume(ctx, cluster, progress, signal);
      return cluster;
    }
    await cluster.stop();
  }
  throw new RecoveryTargetOutOfRange(
    `--before-drop ${table.schema}.${table.name}: none of the ${candidates.length} drop(s) in the WAL archived after backup ${ctx.base.id} (${ctx.base.restorePoint.time}) removed that table; see: tidemark list ${ctx.run.source} --ddl`,
  );
}
