import type { SourceConfig } from '../config/schema';
import type { LogFields, LogLevel } from '../log';
import type { MetricValue } from '../metrics';
import type { Progress } from '../progress';
import type { ArchiveStream } from '../repository/archive';
import type { BackupManifest, RestorePoint } from '../repository/manifest';
import type { Repository } from '../repository/repository';
import type { ObjectStore } from '../repository/storage';
import type { EngineRun } from './engine';
import { pgWal } from './postgres/wal/registration';
import { mysqlBinlog } from './mysql/binlog/registration';

/**
 * Continuous archiving (WAL, binlog) as its own small registry beside the backup methods: an
 * archive belongs to a source, not to a backup type, and it extends the restorable window only
 * from backups it can be replayed onto (`replaysOnto`: physical backups for WAL, logical dumps
 * with coordinates for binlog). Commands ask `archiveFor(config)`; no engine names in commands.
 */
export interface StreamOptions {
  /** Local directory for what is received and not yet archived; keep it across restarts. */
  readonly spoolDir: string;
  /** Replication slot (PostgreSQL). @default - tidemark_<source> */
  readonly slot?: string;
  readonly flushSeconds: number;
  readonly log: (level: LogLevel, msg: string, fields?: LogFields) => void;
  readonly metrics?: (values: Readonly<Record<string, MetricValue>>) => void;
}

/** A point the archive reaches, on a timeline (PostgreSQL; MySQL has one). */
export interface ArchivePoint extends RestorePoint {
  readonly timeline: string;
}

/** An unbroken stretch of archive: replay can go from its start to its end. */
export interface ArchiveRun {
  readonly timeline: string;
  /** First and last file (segment) of the run. */
  readonly first: string;
  readonly last: string;
  readonly startLsn?: string;
  /**
   * Where replay into this run can begin when it continues a parent timeline's run without a gap
   * (PostgreSQL after a promotion): that run's start. @default - startLsn
   */
  readonly replayFromLsn?: string;
  readonly end: ArchivePoint;
  /** Files in the run (the last may be a flushed partial). */
  readonly files: number;
  readonly endsInPartial: boolean;
}

/** Files missing between two runs: replay cannot cross them. */
export interface ArchiveGap {
  readonly timeline: string;
  readonly from: string;
  readonly to: string;
  readonly count: number;
}

export interface ArchiveDescription {
  readonly runs: readonly ArchiveRun[];
  readonly gaps: readonly ArchiveGap[];
  readonly objects: number;
  readonly storedBytes: number;
}

/** A restorable window per run: from the oldest backup the run holds to the run's end. */
export interface ArchiveWindow {
  readonly timeline: string;
  readonly from: string;
  readonly to: string;
  readonly fromLsn?: string;
  readonly toLsn?: string;
}

export interface ArchiveVerification {
  readonly ok: boolean;
  readonly objects: number;
  readonly storedBytes: number;
  /** Gaps after the oldest backup the archive replays onto (all gaps when there is none). */
  readonly gaps: readonly ArchiveGap[];
  /** One line per problem: each gap, each damaged or unknown object. */
  readonly problems: readonly string[];
}

/** A drop or truncate found in the archive (list --ddl, --before-drop). */
export interface ArchiveDdlEvent {
  readonly time: string;
  /** Where the event starts, in the engine's notation (binlog: file:position). */
  readonly position: string;
  readonly kind: string;
  /** What it removed: schema.table names, or the schema for a dropped database. */
  readonly objects: readonly string[];
  readonly statement: string;
}

export interface ContinuousArchive {
  /** Captures changes until the run's signal fires; resumes from the last durable point. */
  stream(run: EngineRun, options: StreamOptions): Promise<void>;
  /** Runs and gaps from the listing and a few headers; needs no key (rpo-check has none). */
  describe(store: ObjectStore, source: string): Promise<ArchiveDescription | undefined>;
  /** The end of the newest run on the newest timeline. */
  newestDurablePoint(store: ObjectStore, source: string): Promise<ArchivePoint | undefined>;
  /** Windows per run, from the backups (already filtered by `replaysOnto`) each run holds. */
  windows(description: ArchiveDescription, backups: readonly BackupManifest[]): ArchiveWindow[];
  /** Continuity from `from` (the oldest replayable backup's point) and every object read back. */
  verify(repository: Repository, source: string, options: { from?: RestorePoint; progress: Progress; signal?: AbortSignal }): Promise<ArchiveVerification>;
  /** Drops and truncates in the archive, oldest first (reads and authenticates the archive). */
  ddlEvents?(repository: Repository, source: string, options: { signal?: AbortSignal }): Promise<ArchiveDdlEvent[]>;
}

export interface ArchiveRegistration {
  readonly id: string;
  readonly summary: string;
  readonly stream: ArchiveStream;
  accepts(config: SourceConfig): boolean;
  /** Backup methods (manifest `details.kind`) the archive is replayed onto. */
  readonly replaysOnto: readonly string[];
  load(): Promise<ContinuousArchive>;
}

export const ARCHIVES: readonly ArchiveRegistration[] = [pgWal, mysqlBinlog];

export function archiveFor(config: SourceConfig): ArchiveRegistration | undefined {
  return ARCHIVES.find((a) => a.accepts(config));
}

/** The newest window's end: how far a restore can go (restorableWindow's `archiveEnd`). */
export function newestWindowEnd(windows: readonly ArchiveWindow[]): RestorePoint | undefined {
  const newest = [...windows].sort((a, b) => a.to.localeCompare(b.to)).pop();
  return newest ? { time: newest.to, ...(newest.toLsn ? { lsn: newest.toLsn } : {}) } : undefined;
}
