import type { RetentionPolicy } from '../config/retention';
import { backupChain, backupReach, resolveBackup, type ArchiveRun } from '../engines/restore-path';
import { archiveRuns, type CatalogBackup, type RetentionCatalog } from './catalog-model';
import { ArchiveDeletion, ObjectsDeletion, type PlannedDeletion } from './deletion';
import { LONG_TERM_CLASSES, periodLabel, periodOf, periodStart } from './periods';

/**
 * planRetention(catalog, policy, now): pure. What to keep and why, what to delete and why, and what
 * Object Lock makes wait. applyRetentionPlan (apply.ts) does exactly the deletions that are due.
 */

export type { PlannedDeletion } from './deletion';

export interface KeptBackup {
  readonly id: string;
  readonly type: CatalogBackup['type'];
  readonly reasons: readonly string[];
  /** For long-term keeps: when the newest of their periods falls out of the policy (ISO). */
  readonly longTermUntil?: string;
}

export interface RetentionPlan {
  readonly source: string;
  readonly now: string;
  readonly keep: readonly KeptBackup[];
  readonly delete: readonly PlannedDeletion[];
  /** Chains the PITR window or the newest backup uses (tiering leaves them alone). */
  readonly activeBackups: readonly string[];
  /** Positions of each stream kept (for people and tests): [from, to) pairs, to = null for "onward". */
  readonly archiveKept: readonly { readonly stream: string; readonly from: number; readonly to: number | null; readonly reason: string }[];
}

export interface RetentionOptions {
  /**
   * How long after its start (or its lease's end) an unfinished backup's parts are collected.
   * @default 24 hours
   */
  readonly unfinishedGraceMs?: number;
}

export const DEFAULT_UNFINISHED_GRACE_MS = 24 * 3_600_000;
const DAY = 86_400_000;
const SUPERSEDED = 'partial superseded by a newer generation or the completed piece';
const UNNEEDED = 'archive no kept backup or the point-in-time window needs';

export function planRetention(catalog: RetentionCatalog, policy: RetentionPolicy, now: Date, options: RetentionOptions = {}): RetentionPlan {
  const nowIso = now.toISOString();
  const runs = archiveRuns(catalog.archive);
  const byId = new Map(catalog.backups.map((b) => [b.id, b]));
  const newestFirst = [...catalog.backups].sort((a, b) => b.restorePoint.time.localeCompare(a.restorePoint.time) || b.id.localeCompare(a.id));
  // Valid: the chain is whole and the archive that makes the backup consistent is there.
  const valid = newestFirst.filter((b) => resolveBackup(byId, runs, b.id) !== undefined);
  const keep = new Map<string, string[]>();
  const longTermUntil = new Map<string, number>();
  const add = (id: string, reason: string) => keep.set(id, [...(keep.get(id) ?? []), reason]);

  // The newest restorable point is never given up, whatever the counts say: it is what --latest restores.
  if (valid[0]) add(valid[0].id, 'newest backup (--latest)');
  // Counts, newest first. RDS snapshots are fulls too; minFull is a floor under `full`.
  const ofType = (type: CatalogBackup['type']) => valid.filter((b) => b.type === type);
  const fullCount = Math.max(policy.full, policy.minFull);
  ofType('full').slice(0, fullCount).forEach((b, i) => add(b.id, i === 0 ? 'newest full' : `one of the newest ${fullCount} fulls`));
  ofType('diff').slice(0, policy.diff).forEach((b) => add(b.id, `one of the newest ${policy.diff} differentials`));
  ofType('logical').slice(0, policy.logical).forEach((b) => add(b.id, `one of the newest ${policy.logical} logical backups`));
  // An incremental lives as long as the full or differential it builds on is kept by count (pgBackRest's rule).
  for (const b of ofType('incr')) {
    const anchor = backupChain(byId, b.id)?.reverse().find((a) => a.type !== 'incr');
    if (anchor && keep.has(anchor.id)) add(b.id, `incremental on kept ${anchor.type} ${anchor.id}`);
  }

  // Long-term keeps: the newest full or logical of each of the last N calendar periods.
  for (const cls of LONG_TERM_CLASSES) {
    const n = policy.longTerm[cls];
    if (n <= 0) continue;
    const current = periodOf(cls, now.getTime());
    const picked = new Set<number>();
    for (const b of valid) {
      if (b.type !== 'full' && b.type !== 'logical') continue;
      const p = periodOf(cls, b.restorePoint.time);
      if (p <= current - n || p > current || picked.has(p)) continue;
      picked.add(p);
      add(b.id, `long-term ${cls} ${periodLabel(cls, p)}`);
      longTermUntil.set(b.id, Math.max(longTermUntil.get(b.id) ?? 0, periodStart(cls, p + n)));
    }
  }

  // The PITR window: backups whose archive covers every point from now − archiveDays on.
  const windowPicks = coverWindow(valid, runs, new Date(now.getTime() - policy.archiveDays * DAY).toISOString(), policy.archiveDays > 0);
  for (const b of windowPicks) add(b.id, 'point-in-time window');

  // A broken chain or missing archive is reported, never resolved by deleting more: such backups
  // stay (with whatever of their chain is left) for an operator to look at.
  const validIds = new Set(valid.map((b) => b.id));
  for (const b of catalog.backups) if (!validIds.has(b.id)) add(b.id, 'not restorable (a parent or its archive is missing): left for an operator');
  for (const b of catalog.backups) {
    if (validIds.has(b.id)) continue;
    const seen = new Set<string>();
    for (let p = b.parent; p !== undefined && byId.has(p) && !seen.has(p); p = byId.get(p)!.parent) {
      seen.add(p);
      add(p, `parent of ${b.id}`);
    }
  }

  // A backup Object Lock holds stays until the lock ends, and must stay restorable until then: its
  // parents and its archive stay with it (otherwise the next plan would find it broken).
  const held = new Set(valid.filter((b) => !keep.has(b.id) && b.objects.some((o) => o.lockedUntil !== undefined && o.lockedUntil > nowIso)).map((b) => b.id));
  const pinned = (id: string) => keep.has(id) || held.has(id);

  // Parents of everything kept or held.
  for (const id of [...keep.keys(), ...held]) {
    for (const p of (backupChain(byId, id) ?? []).slice(0, -1)) {
      if (!keep.get(p.id)?.some((r) => r.startsWith('parent'))) add(p.id, held.has(id) ? `parent of ${id}, which Object Lock holds` : `parent of ${id}`);
    }
  }

  const deletions: PlannedDeletion[] = [];
  const kept: KeptBackup[] = [];
  for (const b of newestFirst) {
    const reasons = keep.get(b.id);
    if (reasons) {
      const until = longTermUntil.get(b.id);
      kept.push({ id: b.id, type: b.type, reasons, ...(until ? { longTermUntil: new Date(until).toISOString() } : {}) });
    } else {
      const keys = [b.manifestKey, ...b.objects.map((o) => o.key).filter((k) => k !== b.manifestKey)];
      deletions.push(new ObjectsDeletion('backup', b.id, keys, b.objects, `${b.type} backup ${b.restorePoint.time} is outside the policy`, nowIso));
    }
  }

  // Archive: what kept backups need to be consistent, everything from the window's first base on,
  // and everything from the newest backup's start on (what --latest replays).
  const needed: { stream: string; from: number; to: number | null; reason: string }[] = [];
  for (const b of catalog.backups) {
    if (!b.replay || !pinned(b.id)) continue;
    needed.push({ stream: b.replay.stream, from: b.replay.from, to: b.replay.consistentAt + 1, reason: `makes ${b.id} consistent` });
  }
  for (const b of windowPicks) if (b.replay) needed.push({ stream: b.replay.stream, from: b.replay.from, to: null, reason: `point-in-time window from ${b.id}` });
  const newestWithArchive = new Map<string, CatalogBackup>();
  for (const b of newestFirst) if (b.replay && pinned(b.id) && !newestWithArchive.has(b.replay.stream)) newestWithArchive.set(b.replay.stream, b);
  for (const [stream, b] of newestWithArchive) needed.push({ stream, from: b.replay!.from, to: null, reason: `from the newest backup ${b.id} on (--latest)` });
  const referenced = new Set(catalog.backups.filter((b) => b.replay && pinned(b.id)).map((b) => b.replay!.stream));

  // One pass over each stream's columns: runs of pieces with the same reason and lock state
  // become one deletion each (a range of the stream, not a list of keys).
  const nowMs = now.getTime();
  for (const stream of catalog.archive) {
    const isNeeded = overlapTest(needed.filter((n) => n.stream === stream.id));
    const judged = referenced.has(stream.id);
    let from = -1;
    let groupReason: string | undefined;
    let groupLocked = false;
    const flush = (to: number) => {
      if (groupReason !== undefined) deletions.push(new ArchiveDeletion(stream, from, to, groupReason, nowMs));
      groupReason = undefined;
    };
    for (let i = 0; i < stream.length; i++) {
      let reason: string | undefined;
      if (stream.superseded(i)) reason = SUPERSEDED;
      // A stream no kept backup replays from (a new timeline, say) is kept whole: never guess.
      else if (judged && !isNeeded(stream.start(i), stream.end(i))) reason = UNNEEDED;
      // Pieces under Object Lock and free ones go in separate groups: the free ones go now.
      const locked = stream.lockedUntil(i) > nowMs;
      if (reason !== groupReason || locked !== groupLocked) {
        flush(i);
        if (reason !== undefined) {
          from = i;
          groupReason = reason;
          groupLocked = locked;
        }
      }
    }
    flush(stream.length);
  }

  const grace = options.unfinishedGraceMs ?? DEFAULT_UNFINISHED_GRACE_MS;
  for (const u of catalog.unfinished) {
    const held = Date.parse(u.leaseUntil ?? u.startedAt) + grace;
    if (now.getTime() < held) continue;
    const why = u.leaseUntil ? `lease ended ${u.leaseUntil}` : `started ${u.startedAt}`;
    deletions.push(new ObjectsDeletion('unfinished', u.id, u.objects.map((o) => o.key), u.objects, `parts of a backup that never finished (${why})`, nowIso));
  }

  const archiveKept = needed.map(({ stream, from, to, reason }) => ({ stream, from, to, reason }));
  const newest = valid[0];
  const active = new Set<string>([...windowPicks.map((b) => b.id), ...(newest ? [newest.id] : [])]);
  const windowStart = new Date(now.getTime() - policy.archiveDays * DAY).toISOString();
  if (policy.archiveDays > 0) for (const b of valid) if (b.restorePoint.time >= windowStart && b.replay) active.add(b.id);
  return { source: catalog.source, now: nowIso, keep: kept, delete: deletions, activeBackups: [...active], archiveKept };
}

/**
 * Whether [start, end) overlaps any of the intervals: merged once, then a binary search per piece,
 * so millions of segments against thousands of kept backups stay cheap.
 */
function overlapTest(intervals: readonly { from: number; to: number | null }[]): (start: number, end: number) => boolean {
  const sorted = intervals.map((i) => ({ from: i.from, to: i.to ?? Infinity })).sort((a, b) => a.from - b.from);
  const merged: { from: number; to: number }[] = [];
  for (const i of sorted) {
    const last = merged[merged.length - 1];
    if (last && i.from <= last.to) last.to = Math.max(last.to, i.to);
    else merged.push({ ...i });
  }
  return (start, end) => {
    // The last interval beginning before `end`, if it reaches past `start`.
    let lo = 0;
    let hi = merged.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (merged[mid].from < end) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && merged[found].to > start;
  };
}

/** Due now (no Object Lock in the way) — what apply does. */
export function dueDeletions(plan: RetentionPlan): PlannedDeletion[] {
  return plan.delete.filter((d) => d.notBefore === undefined);
}

/**
 * The fewest backups whose archive covers every point of the window that is reachable at all:
 * greedy interval cover, preferring the widest reach, then the newest start, so that planning again
 * over the kept backups picks the same ones.
 */
function coverWindow(valid: readonly CatalogBackup[], runs: readonly ArchiveRun[], windowStart: string, enabled: boolean): CatalogBackup[] {
  if (!enabled) return [];
  const reach = new Map<CatalogBackup, string>();
  for (const b of valid) {
    if (!b.replay) continue;
    const r = backupReach(b, runs);
    if (r !== undefined && r > b.restorePoint.time) reach.set(b, r);
  }
  const candidates = [...reach.keys()];
  const better = (a: CatalogBackup, b: CatalogBackup) =>
    reach.get(a)! !== reach.get(b)! ? reach.get(a)! > reach.get(b)! : a.restorePoint.time !== b.restorePoint.time ? a.restorePoint.time > b.restorePoint.time : a.id > b.id;
  const picks: CatalogBackup[] = [];
  let point = windowStart;
  let strict = false; // after the first pick: only a reach beyond the covered point helps
  for (;;) {
    const usable = candidates.filter((b) => b.restorePoint.time <= point && (strict ? reach.get(b)! > point : reach.get(b)! >= point));
    if (usable.length === 0) {
      // Nothing reaches `point`: the next reachable stretch begins at the next backup's own point.
      const next = candidates.filter((b) => b.restorePoint.time > point).sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time))[0];
      if (!next) return picks;
      point = next.restorePoint.time;
      strict = false;
      continue;
    }
    const best = usable.reduce((a, b) => (better(a, b) ? a : b));
    picks.push(best);
    point = reach.get(best)!;
    strict = true;
  }
}
