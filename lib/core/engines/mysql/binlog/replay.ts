import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { throwIfAborted } from '../../../abort';
import { RecoveryTargetOutOfRange, UsageError } from '../../../errors';
import type { Progress } from '../../../progress';
import { chainFailure, ToolRun } from '../../../process/tool';
import type { BackupManifest, RestorePoint } from '../../../repository/manifest';
import type { Repository } from '../../../repository/repository';
import { childEnv } from '../../../secrets';
import { assertTimeInWindow, describeRecoveryTarget, type RecoveryTarget } from '../../recovery-target';
import { restorableWindow } from '../../window';
import type { MysqlToolSession } from '../connection';
import type { MysqlLogicalDetails } from '../logical-details';
import { mysqlBin } from '../tools';
import { BinlogArchive } from './binlog-archive';
import { DecodedBinlogReader, ddlEventsOf, parseTableArgument, removes, ROW_EVENT_TYPES, type DdlEvent, type DecodedEvent } from './decoded';
import { describeGap, type BinlogRun, type InventoryFile } from './inventory';
import { comparePositions } from './names';

/**
 * Point-in-time restore of MySQL/MariaDB: the newest dump at or before the target, then the
 * archived binlog from the dump's coordinates up to the target, piped as
 * `mariadb-binlog <files> | mariadb`, filtered to the source database and rewritten to the target's.
 *
 * Integrity before anything is applied: every binlog object the replay needs is fetched into a
 * private temp dir first (StreamArchive.readToFile: every GCM tag, the final-segment flag, zstd's
 * checksum and the size are checked, and a file appears only whole), during planning, before the
 * dump is loaded. Streaming objects straight into the tool could not do that: the client commits
 * each replayed transaction as it arrives, so a damaged object found halfway would leave a target
 * at a point nobody chose. The tool also needs real files (it seeks to --start-position).
 */
export type ReplayStop = { readonly kind: 'position'; readonly position: number } | { readonly kind: 'datetime'; readonly at: string } | { readonly kind: 'end' };

export interface BinlogReplayPlan {
  /** The dump's coordinates: replay starts there. */
  readonly from: { readonly file: string; readonly position: number };
  /** Staged, verified files in order, the first holding `from`, the last holding the stop. */
  readonly files: readonly string[];
  readonly stop: ReplayStop;
  readonly stagingDir: string;
  readonly sourceDatabase: string;
}

export interface PlannedReplay {
  readonly backup: BackupManifest;
  readonly replay?: BinlogReplayPlan;
  readonly restorePoint: RestorePoint;
}

const detailsOf = (b: BackupManifest) => b.details as MysqlLogicalDetails;
const coordsOf = (b: BackupManifest) => detailsOf(b).binlog!;
const positionIn = (at: { file: string; position: number }, run: BinlogRun) => {
  const last = run.files[run.files.length - 1];
  return comparePositions({ file: run.files[0].file, position: 0 }, at) <= 0 && comparePositions(at, { file: last.file, position: last.facts?.end ?? 0 }) <= 0;
};
const runEndTime = (run: BinlogRun) => run.files[run.files.length - 1].facts?.endTime ?? '';

/** Binlog times are whole seconds in the tool's zone (we run it in UTC): 'YYYY-MM-DD HH:MM:SS'. */
export function stopDatetimeOf(iso: string): string {
  return new Date(Math.floor(Date.parse(iso) / 1000) * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
}

/** Environment for mariadb-binlog: UTC, so --stop-datetime and the printed times mean UTC. */
function toolEnv(): NodeJS.ProcessEnv {
  const env = childEnv();
  delete env.MYSQL_PWD;
  return { ...env, TZ: 'UTC' };
}

/**
 * Decodes one staged file (no row values: see decoded.ts), line by line as the tool prints it,
 * keeping every event but the row-level ones: memory follows transactions, not rows.
 */
export async function decodeFile(path: string): Promise<DecodedEvent[]> {
  const tool = new ToolRun(mysqlBin('binlog'), ['--no-defaults', '--base64-output=decode-rows', path], ['ignore', 'pipe'], { env: toolEnv(), label: 'mariadb-binlog' });
  const reader = new DecodedBinlogReader((e) => !ROW_EVENT_TYPES.has(e.type));
  for await (const line of createInterface({ input: tool.child.stdout!, crlfDelay: Infinity })) reader.line(line);
  await tool.succeeded();
  return reader.end();
}

/** A temp dir holding verified copies of archived binlog files under their own names. */
export class BinlogStaging {
  private readonly staged = new Map<string, string>();
  private readonly decoded = new Map<string, DecodedEvent[]>();

  private constructor(
    private readonly archive: BinlogArchive,
    readonly dir: string,
    private readonly signal?: AbortSignal,
  ) {}

  static async open(archive: BinlogArchive, signal?: AbortSignal): Promise<BinlogStaging> {
    return new BinlogStaging(archive, await mkdtemp(join(tmpdir(), 'tidemark-binlog-')), signal);
  }

  async stage(f: InventoryFile): Promise<string> {
    const known = this.staged.get(f.file);
    if (known) return known;
    throwIfAborted(this.signal);
    const path = join(this.dir, f.file);
    await this.archive.objects.readToFile(f.object, path, { signal: this.signal });
    this.staged.set(f.file, path);
    return path;
  }

  async events(f: InventoryFile): Promise<DecodedEvent[]> {
    const known = this.decoded.get(f.file);
    if (known) return known;
    const events = await decodeFile(await this.stage(f));
    this.decoded.set(f.file, events);
    return events;
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Every drop, truncate and database drop in the archive, oldest first (list --ddl). */
export async function findDdlEvents(repository: Repository, source: string, options: { signal?: AbortSignal } = {}): Promise<DdlEvent[]> {
  const archive = new BinlogArchive(repository, source);
  const { inventory } = await archive.inventory();
  const staging = await BinlogStaging.open(archive, options.signal);
  try {
    const found: DdlEvent[] = [];
    for (const f of inventory.files) found.push(...ddlEventsOf(f.file, await staging.events(f)));
    return found;
  } finally {
    await staging.remove();
  }
}

/** The GTID event right before a Query is part of its transaction: stop there, not between them. */
function transactionStart(events: readonly DecodedEvent[], index: number): number {
  const previous = events[index - 1];
  return previous?.gtid !== undefined ? previous.at : events[index].at;
}

/**
 * Chooses the dump and the replay for a target, staging (and so verifying) the binlog it needs.
 * Every refusal is made here, before anything changes: a target outside the window, one no
 * archived binlog reaches, a drop that is not in the archive.
 */
export async function planBinlogReplay(repository: Repository, source: string, backups: readonly BackupManifest[], at: RecoveryTarget, progress: Progress, signal?: AbortSignal): Promise<PlannedReplay> {
  const archive = new BinlogArchive(repository, source);
  const { inventory } = await archive.inventory();
  const dumps = backups.filter((b) => b.details.kind === 'mysql-logical' && detailsOf(b).binlog).sort((a, b) => comparePositions(coordsOf(a), coordsOf(b)));
  const runs = inventory.runs.filter((r) => dumps.some((d) => positionIn(coordsOf(d), r)));
  const label = describeRecoveryTarget(at);
  const see = `see: tidemark list ${source}`;
  if (runs.length === 0 && at.kind === 'latest' && dumps.length > 0) {
    // An archive that continues from no dump adds nothing: the newest dump is the latest point.
    const newest = [...dumps].sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time)).pop()!;
    return { backup: newest, restorePoint: newest.restorePoint };
  }
  if (runs.length === 0) {
    throw new RecoveryTargetOutOfRange(
      `${label}: source '${source}' has no archived binlog that continues from a logical backup (${inventory.files.length === 0 ? 'run tidemark stream' : 'the archive holds no backup\'s coordinates'}); ${see}`,
    );
  }
  const dumpsIn = (run: BinlogRun) => dumps.filter((d) => positionIn(coordsOf(d), run));
  const filesFrom = (run: BinlogRun, from: string, to?: string) => {
    const start = run.files.findIndex((f) => f.file === from);
    const end = to === undefined ? run.files.length - 1 : run.files.findIndex((f) => f.file === to);
    return run.files.slice(start, end + 1);
  };

  const staging = await BinlogStaging.open(archive, signal);
  try {
    const stageAll = async (files: readonly InventoryFile[]) => {
      progress.note(`fetching and verifying ${files.length} binlog file${files.length === 1 ? '' : 's'}`);
      for (const f of files) await staging.stage(f);
    };
    const planned = async (backup: BackupManifest, files: readonly InventoryFile[], stop: ReplayStop, point: RestorePoint): Promise<PlannedReplay> => {
      await stageAll(files);
      return {
        backup,
        restorePoint: point,
        replay: { from: coordsOf(backup), files: files.map((f) => join(staging.dir, f.file)), stop, stagingDir: staging.dir, sourceDatabase: detailsOf(backup).database },
      };
    };
    const before = (run: BinlogRun, target: { file: string; position: number }) => {
      const chosen = dumpsIn(run).filter((d) => comparePositions(coordsOf(d), target) <= 0).pop();
      if (!chosen) throw new RecoveryTargetOutOfRange(`${label} is before the oldest logical backup the archived binlog continues from; ${see}`);
      return chosen;
    };

    switch (at.kind) {
      case 'latest': {
        const run = runs[runs.length - 1];
        const backup = dumpsIn(run).pop()!;
        // A dump newer than where that archive ends (taken after a gap, say) is the later point. Not
        // when the run holds its coordinates: then the run goes on from it, however close in time
        // (binlog times are whole seconds, a dump's are not: commits in the dump's own second after
        // it would be lost by comparing times).
        const newestDump = [...backups].filter((b) => b.details.kind === 'mysql-logical').sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time)).pop()!;
        const continues = detailsOf(newestDump).binlog !== undefined && positionIn(coordsOf(newestDump), run);
        if (!continues && newestDump.restorePoint.time > runEndTime(run)) {
          await staging.remove();
          return { backup: newestDump, restorePoint: newestDump.restorePoint };
        }
        const last = run.files[run.files.length - 1];
        const beyond = inventory.runs[inventory.runs.length - 1];
        if (beyond !== run) {
          // The archive goes on past a gap that no dump continues from: --latest cannot reach it.
          const gaps = inventory.gaps.filter((g) => g.from >= last.file).map(describeGap);
          progress.note(
            `warning: --latest stops at ${last.file} (${runEndTime(run) || backup.restorePoint.time}): the archive goes on to ${beyond.files[beyond.files.length - 1].file} (${runEndTime(beyond)}) past a gap replay cannot cross (${gaps.join('; ') || 'binlog gap'}), and no logical backup was taken after it; ${see}`,
          );
        }
        return await planned(backup, filesFrom(run, coordsOf(backup).file), { kind: 'end' }, { time: runEndTime(run) || backup.restorePoint.time, binlog: { file: last.file, position: last.facts?.end ?? 0 } });
      }
      case 'time': {
        const windows = runs.map((r) => ({ run: r, window: restorableWindow(dumpsIn(r), { time: runEndTime(r) }) })).filter((w) => w.window !== null);
        const inside = windows.filter((w) => at.at >= w.window!.from && at.at <= w.window!.to).pop();
        if (!inside) {
          const newest = windows[windows.length - 1]?.window ?? null;
          assertTimeInWindow(at.at, newest, source); // throws: outside the newest window
          throw new RecoveryTargetOutOfRange(`--time ${at.at} falls in a binlog gap of source '${source}'; ${see}`);
        }
        const backup = dumpsIn(inside.run).filter((d) => d.restorePoint.time <= at.at).pop()!;
        return await planned(backup, filesFrom(inside.run, coordsOf(backup).file), { kind: 'datetime', at: at.at }, { time: at.at });
      }
      case 'binlog': {
        const target = { file: at.file, position: at.position };
        const run = runs.find((r) => positionIn(target, r));
        if (!run) throw new RecoveryTargetOutOfRange(`${label} is not in the archived binlog of source '${source}' that continues from a logical backup; ${see}`);
        const backup = before(run, target);
        const files = filesFrom(run, coordsOf(backup).file, at.file);
        const events = await staging.events(files[files.length - 1]);
        const reached = events.filter((e) => e.at < at.position).pop();
        return await planned(backup, files, { kind: 'position', position: at.position }, { time: reached?.time ?? backup.restorePoint.time, binlog: target });
      }
      case 'gtid': {
        if (!/^\d+-\d+-\d+$/.test(at.set)) throw new UsageError(`--gtid ${at.set}: this version replays MariaDB binlogs to one GTID (domain-server-sequence, e.g. 0-1-42)`);
        for (const run of [...runs].reverse()) {
          const files = filesFrom(run, coordsOf(dumpsIn(run)[0]).file);
          for (let i = 0; i < files.length; i++) {
            const events = await staging.events(files[i]);
            const index = events.findIndex((e) => e.gtid === at.set);
            if (index < 0) continue;
            const next = events.slice(index + 1).find((e) => e.gtid !== undefined || /^(Rotate|Stop)$/.test(e.type));
            const stopAt = next ? next.at : events[events.length - 1].endPosition;
            const target = { file: files[i].file, position: stopAt };
            const backup = before(run, target);
            return await planned(backup, filesFrom(run, coordsOf(backup).file, files[i].file), { kind: 'position', position: stopAt }, { time: events[index].time, binlog: target });
          }
        }
        throw new RecoveryTargetOutOfRange(`${label}: no transaction with that GTID in the archived binlog after a logical backup of source '${source}'; ${see}`);
      }
      case 'before-drop': {
        const table = parseTableArgument(at.table);
        if (!table) throw new UsageError(`--before-drop ${at.table}: expected database.table (either may be in backquotes)`);
        // The newest drop of exactly that table after some dump: the one the user just lived through.
        for (const run of [...runs].reverse()) {
          const files = filesFrom(run, coordsOf(dumpsIn(run)[0]).file);
          for (let i = files.length - 1; i >= 0; i--) {
            const events = await staging.events(files[i]);
            const drops = ddlEventsOf(files[i].file, events).filter((d) => removes(d, table));
            const drop = drops.pop();
            if (!drop) continue;
            const index = events.findIndex((e) => e.at === drop.position);
            const stopAt = transactionStart(events, index);
            const target = { file: files[i].file, position: stopAt };
            const backup = dumpsIn(run).filter((d) => comparePositions(coordsOf(d), target) <= 0).pop();
            if (!backup) continue; // that drop came before every dump: look no further back in this run
            progress.note(`found ${drop.kind} of ${table.database}.${table.table} at ${drop.file}:${drop.position} (${drop.time}): ${drop.statement.slice(0, 200)}`);
            return await planned(backup, filesFrom(run, coordsOf(backup).file, files[i].file), { kind: 'position', position: stopAt }, { time: drop.time, binlog: target });
          }
        }
        throw new RecoveryTargetOutOfRange(`${label}: no DROP TABLE, TRUNCATE or DROP DATABASE of that table in the archived binlog after a logical backup of source '${source}'; see: tidemark list ${source} --ddl`);
      }
      default:
        throw new UsageError(`${label} is not a MySQL target: use --time, --position, --gtid, --before-drop, --backup or --latest`);
    }
  } catch (e) {
    await staging.remove();
    throw e;
  }
}

/** The replay's two tools, piped by the kernel: node sees neither the SQL nor the events. */
export async function applyBinlogReplay(plan: BinlogReplayPlan, session: MysqlToolSession, targetDatabase: string, signal?: AbortSignal): Promise<void> {
  const { from, stop, sourceDatabase } = plan;
  const args = [
    '--no-defaults',
    `--database=${sourceDatabase}`,
    ...(sourceDatabase !== targetDatabase ? [`--rewrite-db=${sourceDatabase}->${targetDatabase}`] : []),
    `--start-position=${from.position}`,
    ...(stop.kind === 'position' ? [`--stop-position=${stop.position}`] : stop.kind === 'datetime' ? [`--stop-datetime=${stopDatetimeOf(stop.at)}`] : []),
    ...plan.files,
  ];
  throwIfAborted(signal);
  const reader = new ToolRun(mysqlBin('binlog'), args, ['ignore', 'pipe'], { env: toolEnv(), label: 'mariadb-binlog' });
  const client = new ToolRun(mysqlBin('client'), [...session.connectArgs, '--binary-mode', '-D', targetDatabase], [reader.child.stdout!, 'ignore'], { env: session.env, label: 'mariadb' });
  // Our copy of the pipe's read end goes: if the client dies, the reader must get EPIPE, not block.
  reader.child.stdout!.destroy();
  const onAbort = () => {
    reader.kill();
    client.kill();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.all([reader.exited, client.exited]);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  throwIfAborted(signal);
  const failed = chainFailure([reader, client]);
  if (failed) throw failed;
}
