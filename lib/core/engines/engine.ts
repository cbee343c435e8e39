import type { SourceConfig } from '../config/schema';
import type { Progress } from '../progress';
import type { TableChecksum, TableChecksums } from '../drill/checksums';
import type { Catalog } from '../repository/catalog';
import type { BackupManifest, RestorePoint } from '../repository/manifest';
import type { OpenedBackup, Repository } from '../repository/repository';
import type { ZstdOptions } from '../pipeline/zstd';
import type { BackupType } from './backup-types';
import type { RecoveryTarget } from './recovery-target';

/**
 * The seam between commands and engines (../shared/ENGINE-SEAM.md weighed): commands ask the
 * registry (registry.ts) for a method and call it; they never branch on engine names.
 */

/** Everything one run of an engine needs; replaces per-engine input types. */
export interface EngineRun {
  readonly repository: Repository;
  readonly source: string;
  readonly config: SourceConfig;
  readonly compression: ZstdOptions;
  /** AWS region for engines that call AWS (RDS). @default - the source's, else aws.region, else the SDK's */
  readonly region?: string;
  readonly progress: Progress;
  readonly signal: AbortSignal;
}

/** Where restored data goes. */
export type RestoreTarget =
  /**
   * A running server: postgres://… or mysql://…; the database is created when missing. Its password
   * comes as a reference (env:, file:, secret:), resolved by the engine at the moment of use, so it
   * is in no argument, payload or plan.
   */
  | { readonly kind: 'database'; readonly url: string; readonly table?: string; readonly passwordRef?: string }
  /**
   * An empty directory that becomes a data directory (physical PostgreSQL), its server started when
   * `start` says so. `start.throwaway` (a drill's instance): the server runs without fsync, over the
   * socket in the data directory only and trusted there (physical/start-cluster.ts, makeThrowaway).
   */
  | { readonly kind: 'data-dir'; readonly path: string; readonly start?: { readonly port: number; readonly osUser?: string; readonly throwaway?: boolean } };

export interface RestoreRequest {
  readonly at: RecoveryTarget;
  readonly to: RestoreTarget;
  /** Restore over a target that holds data. */
  readonly force: boolean;
  /** Connections (MySQL/MariaDB logical restores) to load through; @default - the engine's choice */
  readonly parallel?: number;
}

/**
 * A restore decided before anything changes: the backups to apply (base first, the chosen one last),
 * the archive to replay after them, and the point the target will be at. planRestore has made every
 * refusal it can (target not empty, target out of range, wrong key, altered manifest, tool too old),
 * so applyRestore only does work. A drill can plan without applying.
 */
export interface RestorePlan {
  readonly method: string;
  readonly chain: readonly BackupManifest[];
  readonly replay?: { readonly from: RestorePoint; readonly to: RecoveryTarget };
  readonly target: RestoreTarget;
  readonly force: boolean;
  /** The point the restored data will be consistent at. */
  readonly restorePoint: RestorePoint;
}

export interface RestoredTarget {
  /** The target as shown to people (no password). */
  readonly target: string;
  readonly restorePoint: RestorePoint;
  readonly table?: string;
  /** What the restore created and would have undone on failure (database, roles). */
  readonly created: readonly string[];
}

/** One way of backing up and restoring a kind of source: pg_dump, RDS snapshots, … */
export interface BackupMethod<Plan extends RestorePlan = RestorePlan> {
  backup(run: EngineRun, type: BackupType): Promise<BackupManifest>;
  planRestore(run: EngineRun, catalog: Catalog, request: RestoreRequest): Promise<Plan>;
  applyRestore(run: EngineRun, plan: Plan): Promise<RestoredTarget>;
  /**
   * Checks beyond reading the backup's own objects (verify reads those for every method): e.g.
   * that the ancestors' packs a physical backup points into are stored. Warnings do not fail verify.
   */
  verifyBackup?(repository: Repository, source: string, backup: OpenedBackup): Promise<{ readonly problems: readonly string[]; readonly warnings: readonly string[] }>;
  /** Restore drills (commands/drill.ts): a throwaway instance this method restores into. Absent: no drills. */
  readonly drill?: DrillSupport;
}

/**
 * What a drill needs of a method beyond planRestore/applyRestore: which point it would reach (so the
 * drill picks the method that restores closest to the target), and a throwaway instance in the
 * drill's scratch directory to restore into and check. Teardown is the drill's (`stop`, then the
 * scratch directory is removed); `drill-cleanup` finds servers left behind by their pid files.
 */
export interface DrillSupport {
  /** The time a restore to `at` would land at, or undefined when this method's backups cannot reach it. */
  reach(run: EngineRun, catalog: Catalog, at: RecoveryTarget): Promise<string | undefined>;
  provision(run: EngineRun, catalog: Catalog, at: RecoveryTarget, scratchDir: string): Promise<DrillInstance>;
  /** A database restored by someone else (an RDS instance the state machine restored): as the source's user. */
  connect?(run: EngineRun, endpoint: { readonly host: string; readonly port: number }): Promise<DrillDatabase>;
}

export interface DrillInstance {
  /** Where the restore writes (a database URL on the instance, or a data directory). */
  readonly target: RestoreTarget;
  /** After the restore: the restored database, started now if the restore left it stopped. */
  open(restored: RestoredTarget): Promise<DrillDatabase>;
  /** Stops the server (fast, then immediate); safe to call twice and before open. */
  stop(): Promise<void>;
}

export interface DrillDatabase {
  /** The first column of the first row of `sql`, as text; null for SQL NULL or no row. */
  scalar(sql: string): Promise<string | null>;
  /** The engine's own verifier over every table and index (pg_amcheck, CHECK TABLE). */
  verify(signal: AbortSignal): Promise<{ readonly name: string; readonly ok: boolean; readonly detail: string }>;
  /** Counts and checksums of every table, each hashed the way `recorded` was. */
  checksums(recorded: TableChecksums): Promise<Record<string, TableChecksum>>;
  close(): Promise<void>;
}

/**
 * Continuous archiving (WAL, binlog) is its own capability with its own small registry
 * (continuous-archive.ts): the restorable window is the backups' points extended by the archive
 * that continues unbroken from them (window.ts restorableWindow).
 */
export type { ContinuousArchive } from './continuous-archive';
