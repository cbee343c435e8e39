/**
 * How a point is reached: a chain of backups (base first) and, for methods with a continuous
 * archive, the WAL/binlog replayed after them. One resolver for restore (select-backup.ts), the
 * restorable window, and retention, which must never remove what it answers with.
 *
 * Positions in an archive are plain numbers (a WAL segment number, a binlog file's ordinal and
 * offset folded into one); the resolver only compares them.
 */

/** What the resolver needs of a backup. */
export interface RestorableBackup {
  readonly id: string;
  readonly parent?: string;
  readonly restorePoint: { readonly time: string };
  /** How an archive continues this backup, when one can. */
  readonly replay?: BackupReplay;
}

export interface BackupReplay {
  /** The archive stream (`wal/00000001`, `binlog/…`) the backup belongs to. */
  readonly stream: string;
  /** Where replay must begin: the backup's start (physical) or its snapshot position (logical). */
  readonly from: number;
  /** Where the backup is consistent; archive up to here is needed to restore the backup at all. */
  readonly consistentAt: number;
  /** Physical backups need [from, consistentAt] replayed even to reach their own point. */
  readonly needsArchive: boolean;
}

/** Contiguous archive: positions [start, end) replayable without a gap, reaching `endTime`. */
export interface ArchiveRun {
  readonly stream: string;
  readonly start: number;
  readonly end: number;
  readonly endTime: string;
}

/** The chain from the base to `id` (base first), or undefined when a link is missing. */
export function backupChain<B extends { readonly id: string; readonly parent?: string }>(
  byId: ReadonlyMap<string, B>,
  id: string,
): B[] | undefined {
  const chain: B[] = [];
  const seen = new Set<string>();
  for (let cur: string | undefined = id; cur !== undefined; ) {
    const b = byId.get(cur);
    if (!b || seen.has(cur)) return undefined;
    seen.add(cur);
    chain.unshift(b);
    cur = b.parent;
  }
  return chain;
}

/** The run that holds positions `from` … `to` (inclusive) whole, if any. */
export function runCovering(runs: readonly ArchiveRun[], stream: string, from: number, to: number): ArchiveRun | undefined {
  return runs.find((r) => r.stream === stream && r.start <= from && to < r.end);
}

/** The newest time this backup restores to: its own point, or as far as its archive reaches unbroken. */
export function backupReach(b: RestorableBackup, runs: readonly ArchiveRun[]): string | undefined {
  if (!b.replay) return b.restorePoint.time;
  const run = runCovering(runs, b.replay.stream, b.replay.from, b.replay.consistentAt);
  if (!run) return b.replay.needsArchive ? undefined : b.restorePoint.time;
  return run.endTime > b.restorePoint.time ? run.endTime : b.restorePoint.time;
}

export interface ResolvedRestore<B> {
  /** Base first, the backup restored last. */
  readonly chain: readonly B[];
  /** Replay after the chain up to the target time (undefined: the backup's own point). */
  readonly replayTo?: string;
}

/**
 * How to reach `time`: the newest backup at or before it whose chain is whole and whose archive
 * reaches it unbroken (pgBackRest's rule: the newest backup that stopped before the target).
 */
export function resolveTime<B extends RestorableBackup>(
  backups: readonly B[],
  runs: readonly ArchiveRun[],
  time: string,
): ResolvedRestore<B> | undefined {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const candidates = backups.filter((b) => b.restorePoint.time <= time).sort((a, b) => b.restorePoint.time.localeCompare(a.restorePoint.time) || b.id.localeCompare(a.id));
  for (const b of candidates) {
    const chain = backupChain(byId, b.id);
    if (!chain) continue;
    const reach = backupReach(b, runs);
    if (reach === undefined || reach < time) continue;
    return { chain, ...(time > b.restorePoint.time ? { replayTo: time } : {}) };
  }
  return undefined;
}

/** Whether a named backup restores: its chain whole, and the archive that makes it consistent present. */
export function resolveBackup<B extends RestorableBackup>(
  backups: readonly B[] | ReadonlyMap<string, B>,
  runs: readonly ArchiveRun[],
  id: string,
): ResolvedRestore<B> | undefined {
  const byId = 'get' in backups ? backups : new Map(backups.map((b) => [b.id, b]));
  const chain = backupChain(byId, id);
  if (!chain) return undefined;
  return backupReach(chain[chain.length - 1], runs) === undefined ? undefined : { chain };
}
