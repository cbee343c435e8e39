import fc from 'fast-check';
import type { RetentionPolicy, SourcePolicy } from '../../lib/core/config/retention';
import { MINIMUM_STORAGE_DAYS, TIER_MINIMUM_OBJECT_BYTES } from '../../lib/core/config/tiers';
import { backupReach, resolveBackup, resolveTime } from '../../lib/core/engines/restore-path';
import { catalogAfter } from '../../lib/core/retention/apply';
import {
  ArchiveStreamBuilder,
  archiveRuns,
  streamId,
  type ArchiveStream,
  type CatalogBackup,
  type CatalogObject,
  type RetentionCatalog,
  type UnfinishedBackup,
} from '../../lib/core/retention/catalog-model';
import { DEFAULT_UNFINISHED_GRACE_MS, dueDeletions, planRetention } from '../../lib/core/retention/plan-retention';
import { planTiering } from '../../lib/core/retention/plan-tiering';
import { periodLabel, periodOf, periodStart } from '../../lib/core/retention/periods';

/**
 * Retention over generated catalogs: physical chains (full/diff/incr, some with a missing parent),
 * logical backups, a WAL archive in day-sized pieces with gaps, a timeline switch and superseded
 * partials, Object Lock on any object, unfinished backups with and without leases, random policies
 * and clocks. MySQL catalogs instead: logical dumps that the binlog continues from their
 * coordinates, binlog files (positions doubled: a file archived only in partials covers half, so
 * its lost tail is a gap), files whose tail never arrived, and a change of server identity as a
 * second stream. The invariants are checked with restore's own resolver (engines/restore-path.ts).
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;
const SOURCE = 'app';
const EPOCH = Date.UTC(2026, 0, 1);

interface EventSpec {
  gapHours: number;
  kind: 'full' | 'diff' | 'incr' | 'logical';
  durationMin: number;
  broken: boolean;
  lockDays: number | null;
  bytes: number[];
  needsArchive: boolean;
  /** A logical backup the archive continues from its snapshot (MySQL with binlog). */
  logicalReplay: boolean;
}

interface Spec {
  engine: 'postgres' | 'mysql';
  /** MySQL: days (back from today) whose binlog file was archived only in partials: its tail is lost. */
  tailLost: number[];
  nowOffset: number;
  events: EventSpec[];
  archiveFromDaysAgo: number;
  archiveGaps: number[];
  switchDaysAgo: number | null;
  partialGenerations: number;
  lastCompleted: boolean;
  archiveLockDays: number | null;
  unfinished: { ageHours: number; lease: boolean; lockDays: number | null }[];
  policy: RetentionPolicy;
  tiers: SourcePolicy['tiers'];
}

const lock = fc.option(fc.integer({ min: 0, max: 120 }), { freq: 4 });

const specArb: fc.Arbitrary<Spec> = fc.record({
  engine: fc.constantFrom('postgres' as const, 'mysql' as const),
  tailLost: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 3 }),
  nowOffset: fc.integer({ min: 0, max: 730 * DAY }),
  events: fc.array(
    fc.record({
      gapHours: fc.integer({ min: 1, max: 24 * 25 }),
      kind: fc.constantFrom('full' as const, 'diff' as const, 'incr' as const, 'logical' as const),
      durationMin: fc.integer({ min: 1, max: 600 }),
      broken: fc.integer({ min: 0, max: 25 }).map((n) => n === 0),
      lockDays: lock,
      bytes: fc.array(fc.integer({ min: 1, max: 2 * 1024 * 1024 }), { minLength: 1, maxLength: 3 }),
      needsArchive: fc.boolean(),
      logicalReplay: fc.boolean(),
    }),
    { maxLength: 40 },
  ),
  archiveFromDaysAgo: fc.integer({ min: 0, max: 300 }),
  archiveGaps: fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 4 }),
  switchDaysAgo: fc.option(fc.integer({ min: 0, max: 300 }), { freq: 3 }),
  partialGenerations: fc.integer({ min: 0, max: 3 }),
  lastCompleted: fc.boolean(),
  archiveLockDays: lock,
  unfinished: fc.array(fc.record({ ageHours: fc.integer({ min: 0, max: 96 }), lease: fc.boolean(), lockDays: lock }), { maxLength: 3 }),
  policy: fc.record({
    full: fc.integer({ min: 0, max: 5 }),
    diff: fc.integer({ min: 0, max: 5 }),
    logical: fc.integer({ min: 0, max: 10 }),
    archiveDays: fc.integer({ min: 0, max: 40 }),
    minFull: fc.integer({ min: 1, max: 3 }),
    longTerm: fc.record({
      daily: fc.integer({ min: 0, max: 7 }),
      weekly: fc.integer({ min: 0, max: 5 }),
      monthly: fc.integer({ min: 0, max: 13 }),
      yearly: fc.integer({ min: 0, max: 2 }),
    }),
  }),
  tiers: fc.record({
    warmAfterDays: fc.integer({ min: 30, max: 60 }),
    coldAfterDays: fc.integer({ min: 60, max: 160 }),
    coldClass: fc.constantFrom('GLACIER' as const, 'DEEP_ARCHIVE' as const),
  }),
});

const iso = (t: number) => new Date(t).toISOString();
const idAt = (t: number, i: number) => `${iso(t).replace(/[-:]/g, '')}-${i.toString(16).padStart(6, '0')}`;
const timeline = (t: number, switchAt: number | undefined) => (switchAt !== undefined && t >= switchAt ? '00000002' : '00000001');
/** A change of server identity starts a second binlog stream (build-catalog.ts names it `<base>~1`). */
const binlogStream = (t: number, switchAt: number | undefined) => streamId('binlog', switchAt !== undefined && t >= switchAt ? 'mariadb-bin~1' : 'mariadb-bin');
const naming = (kind: 'wal' | 'binlog', tl: string) => (start: number, partial: number) =>
  `${SOURCE}/${kind}/${tl}/${start}${partial > 0 ? `.partial.${String(partial).padStart(6, '0')}` : ''}`;

function object(key: string, bytes: number, storedAt: number, lockDays: number | null): CatalogObject {
  return { key, bytes, tier: 'standard', storedAt: iso(storedAt), ...(lockDays !== null ? { lockedUntil: iso(storedAt + lockDays * DAY) } : {}) };
}

function buildCatalog(spec: Spec): { catalog: RetentionCatalog; now: Date } {
  const now = EPOCH + spec.nowOffset;
  const switchAt = spec.switchDaysAgo === null ? undefined : Math.floor((now - spec.switchDaysAgo * DAY) / DAY) * DAY;
  const span = spec.events.reduce((n, e) => n + e.gapHours * HOUR, 0);
  let t = now - span - HOUR;
  const backups: CatalogBackup[] = [];
  spec.events.forEach((e, i) => {
    t += e.gapHours * HOUR;
    const finished = Math.min(t + e.durationMin * 60_000, now - 1);
    const id = idAt(t, i);
    const physical = [...backups].reverse().filter((b) => b.type !== 'logical');
    const lastFull = physical.find((b) => b.type === 'full');
    let type = spec.engine === 'mysql' ? 'logical' : e.kind;
    let parent: string | undefined;
    if (type === 'diff') parent = lastFull?.id;
    if (type === 'incr') parent = physical[0]?.id;
    if ((type === 'diff' || type === 'incr') && !parent) type = 'full';
    if (parent && e.broken) parent = `${parent}-missing`;
    const prefix = `${SOURCE}/backups/${id}/`;
    const manifestKey = `${prefix}manifest.json`;
    const objects = [object(manifestKey, 2048, finished, e.lockDays), ...e.bytes.map((b, j) => object(`${prefix}pack-${j}`, b, finished, e.lockDays))];
    const restoreAt = type === 'logical' ? t : finished;
    const base = parent ? (backups.find((b) => b.id === parent)?.chain?.base ?? parent) : undefined;
    backups.push({
      id,
      type,
      method: spec.engine === 'mysql' ? 'mysql-logical' : type === 'logical' ? 'pg-logical' : 'pg-physical',
      startedAt: iso(t),
      finishedAt: iso(finished),
      ...(parent ? { parent, chain: { base: base!, depth: (backups.find((b) => b.id === parent)?.chain?.depth ?? 0) + 1 } } : {}),
      restorePoint: { time: iso(restoreAt) },
      ...(spec.engine === 'mysql'
        ? e.logicalReplay || e.needsArchive // most dumps carry coordinates
          ? { replay: { stream: binlogStream(t, switchAt), from: 2 * Math.floor(t / DAY), consistentAt: 2 * Math.floor(t / DAY), needsArchive: false } }
          : {}
        : type === 'logical'
        ? e.logicalReplay
          ? { replay: { stream: streamId('wal', timeline(t, switchAt)), from: Math.floor(t / DAY), consistentAt: Math.floor(t / DAY), needsArchive: false } }
          : {}
        : {
            replay: {
              stream: streamId('wal', timeline(t, switchAt)),
              from: Math.floor(t / DAY),
              consistentAt: Math.floor(finished / DAY),
              needsArchive: e.needsArchive,
            },
          }),
      objects,
      manifestKey,
    });
  });

  // WAL (or binlog) in day pieces from archiveFromDaysAgo until today; today's piece is partial (generations).
  const today = Math.floor(now / DAY);
  const skip = new Set(spec.archiveGaps.map((g) => today - g));
  const tailLost = new Set(spec.tailLost.map((g) => today - g));
  const streams = new Map<string, ArchiveStreamBuilder>();
  for (let d = today - spec.archiveFromDaysAgo; d <= today; d++) {
    if (skip.has(d)) continue;
    const mysql = spec.engine === 'mysql';
    const id = mysql ? binlogStream(d * DAY, switchAt) : streamId('wal', timeline(d * DAY, switchAt));
    const [kind, tl] = id.split('/') as ['wal' | 'binlog', string];
    let builder = streams.get(id);
    if (!builder) streams.set(id, (builder = new ArchiveStreamBuilder(kind, tl, naming(kind, tl))));
    const [start, width] = mysql ? [2 * d, 2] : [d, 1];
    const end = Math.min((d + 1) * DAY - 1, now);
    const lock = (at: number) => (spec.archiveLockDays === null ? {} : { lockedUntil: at + spec.archiveLockDays * DAY });
    const lost = mysql && tailLost.has(d) && d < today;
    if ((d < today || spec.lastCompleted) && !lost) builder.add({ start, end: start + width, endTime: end, bytes: 16 << 20, ...lock(end) });
    if (d === today || lost) {
      // Partials: of today's open piece, or all that is left of a binlog file whose tail was lost.
      for (let g = 1; g <= Math.max(spec.partialGenerations, lost ? 1 : 0); g++) {
        const at = d === today ? Math.max(d * DAY, now - (spec.partialGenerations - g) * 60_000) : end - (3 - g) * 60_000;
        builder.add({ start, end: start + 1, endTime: at, bytes: 16 << 20, ...lock(at), partial: g });
      }
    }
  }
  const archive: ArchiveStream[] = [...streams.values()].map((b) => b.build());

  const unfinished: UnfinishedBackup[] = spec.unfinished.map((u, i) => {
    const started = now - u.ageHours * HOUR;
    const id = idAt(started, 0xf00000 + i);
    const prefix = `${SOURCE}/backups/${id}/`;
    return {
      id,
      startedAt: iso(started),
      ...(u.lease ? { leaseUntil: iso(started + 24 * HOUR) } : {}),
      objects: [object(`${prefix}lease.json`, 120, started, u.lockDays), object(`${prefix}dump`, 4096, started, u.lockDays)],
    };
  });
  backups.sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time) || a.id.localeCompare(b.id));
  return { catalog: { source: SOURCE, backups, archive, unfinished, untouchable: [] }, now: new Date(now) };
}

/** Times worth checking in [from, to]: every backup's point, every run's end, and the window's edges. */
function samplePoints(catalog: RetentionCatalog, from: string, to: string): string[] {
  const runs = archiveRuns(catalog.archive);
  const points = new Set<string>([from, to]);
  for (const b of catalog.backups) points.add(b.restorePoint.time);
  for (const r of runs) points.add(r.endTime);
  return [...points].filter((p) => p >= from && p <= to);
}

const indices = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

const NUM_RUNS = Number(process.env.TIDEMARK_RETENTION_RUNS ?? 10_000);

describe('planRetention over generated catalogs', () => {
  it(`keeps every PITR point and long-term backup restorable, the newest full, every lock, and is stable (${NUM_RUNS} catalogs)`, () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        const { catalog, now } = buildCatalog(spec);
        const nowIso = now.toISOString();
        const plan = planRetention(catalog, spec.policy, now);
        const due = dueDeletions(plan);
        const after = catalogAfter(catalog, plan);
        const runsBefore = archiveRuns(catalog.archive);
        const runsAfter = archiveRuns(after.archive);

        // Every deletion says why; nothing under Object Lock is deleted now.
        const fail = (what: string) => {
          throw new Error(what);
        };
        for (const d of plan.delete) if (d.reason.length < 10) fail(`deletion of ${d.id} without a reason`);
        // Archive pieces through the stream's columns: a piece object per piece (ISO times and all)
        // was a fifth of this property's time.
        const lockedKeys = new Set([
          ...[...catalog.backups.flatMap((b) => b.objects), ...catalog.unfinished.flatMap((u) => u.objects)]
            .filter((o) => o.lockedUntil !== undefined && o.lockedUntil > nowIso)
            .map((o) => o.key),
          ...catalog.archive.flatMap((s) => indices(s.length).filter((i) => s.lockedUntil(i) > now.getTime()).map((i) => s.key(i))),
        ]);
        const dueKeys = new Set(due.flatMap((d) => d.keys()));
        for (const k of dueKeys) if (lockedKeys.has(k)) fail(`locked ${k} deleted`);
        for (const d of plan.delete) if (d.keys().length !== d.objects || d.objects === 0) fail(`${d.id} counts ${d.objects} objects`);
        for (const d of plan.delete) if (d.notBefore !== undefined && d.notBefore <= nowIso) fail(`${d.id} deferred to the past`);

        // The newest valid full stays.
        const newestFull = [...catalog.backups].reverse().find((b) => b.type === 'full' && resolveBackup(catalog.backups, runsBefore, b.id));
        if (newestFull) expect(after.backups.some((b) => b.id === newestFull.id)).toBe(true);

        // Every point of the PITR window that the archive could reach is still reachable.
        if (spec.policy.archiveDays > 0) {
          const windowStart = iso(now.getTime() - spec.policy.archiveDays * DAY);
          // Points the archive reaches (a backup's own point alone is the counts' business).
          const replayable = catalog.backups.filter((b) => b.replay && backupReach(b, runsBefore)! > b.restorePoint.time);
          for (const t of samplePoints(catalog, windowStart, nowIso)) {
            if (resolveTime(replayable, runsBefore, t)) {
              if (!resolveTime(after.backups, runsAfter, t)) throw new Error(`point ${t} of the window is no longer restorable`);
            }
          }
        }
        // Every kept backup that restored before still restores (long-term keeps among them).
        for (const k of plan.keep) {
          if (resolveBackup(catalog.backups, runsBefore, k.id) && !resolveBackup(after.backups, runsAfter, k.id)) fail(`kept ${k.id} no longer restores`);
        }
        // --latest: the archive from the newest backup's start on is never removed.
        const remaining = new Set(after.backups.map((b) => b.id));
        const newestReplay = [...catalog.backups].reverse().find((b) => b.replay && remaining.has(b.id));
        expect(remaining.has(catalog.backups[catalog.backups.length - 1]?.id ?? '')).toBe(catalog.backups.length > 0);
        if (newestReplay?.replay) {
          const r = newestReplay.replay;
          const removed = catalog.archive
            .filter((s) => s.id === r.stream)
            .flatMap((s) => indices(s.length).filter((i) => s.partial(i) === 0 && s.end(i) > r.from && dueKeys.has(s.key(i))).map((i) => s.key(i)));
          if (removed.length > 0) fail(`archive after the newest backup's start deleted: ${removed.join(', ')}`);
        }
        // Superseded partials go (unless locked).
        for (const s of after.archive) {
          for (let i = 0; i < s.length; i++) if (s.superseded(i) && !lockedKeys.has(s.key(i))) fail(`superseded ${s.key(i)} kept`);
        }
        // A backup still running (lease or grace) keeps its parts.
        for (const u of catalog.unfinished) {
          const held = Date.parse(u.leaseUntil ?? u.startedAt) + DEFAULT_UNFINISHED_GRACE_MS > now.getTime();
          if (held && due.some((d) => d.id === u.id)) fail(`running ${u.id} collected`);
        }

        // Planning again right after applying changes nothing: only the deferred deletions remain.
        const again = planRetention(after, spec.policy, now);
        expect(dueDeletions(again)).toEqual([]);
        const deferred = (p: typeof plan) => p.delete.filter((d) => d.notBefore).flatMap((d) => d.keys()).sort();
        expect(deferred(again)).toEqual(deferred(plan));

        // Tiering: whole chains of kept backups only, never an active one, nothing under 128 KiB.
        const policy: SourcePolicy = { retention: spec.policy, tiers: spec.tiers };
        const tiering = planTiering(after, policy, now);
        const active = new Set(again.activeBackups);
        for (const m of tiering.moves) {
          for (const id of m.backups) if (active.has(id)) fail(`active ${id} tiered`);
          const members = after.backups.filter((b) => b.id === m.chain || b.chain?.base === m.chain);
          expect([...m.backups].sort()).toEqual(members.map((b) => b.id).sort());
          const sizes = new Map(after.backups.flatMap((b) => b.objects).map((o) => [o.key, o.bytes]));
          for (const k of m.keys) if (sizes.get(k)! < TIER_MINIMUM_OBJECT_BYTES) fail(`small ${k} tiered`);
          // The chain stays kept at least as long as the class bills for.
          const minDays = m.tier === 'cold' ? MINIMUM_STORAGE_DAYS[spec.tiers.coldClass] : MINIMUM_STORAGE_DAYS.STANDARD_IA;
          for (const id of m.backups) {
            const until = again.keep.find((k) => k.id === id)?.longTermUntil;
            if (!until || Date.parse(until) - now.getTime() < minDays * DAY) fail(`${id} tiered ${m.tier} but kept only until ${until}`);
          }
        }
        // Tiering twice moves nothing the second time.
        expect(planTiering(catalogAfter(after, again, tiering), policy, now).moves).toEqual([]);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 120_000);

  it('fails when it would delete what the PITR window needs (the check can fail)', () => {
    // A window of 10 days over a full 20 days old and unbroken WAL: dropping the full must be caught.
    const event = (kind: EventSpec['kind'], gapHours: number): EventSpec => ({ gapHours, kind, durationMin: 30, broken: false, lockDays: null, bytes: [1 << 20], needsArchive: true, logicalReplay: false });
    const spec: Spec = {
      engine: 'postgres',
      tailLost: [],
      nowOffset: 400 * DAY,
      events: [event('full', 1), event('logical', 24 * 20)],
      archiveFromDaysAgo: 30,
      archiveGaps: [],
      switchDaysAgo: null,
      partialGenerations: 1,
      lastCompleted: false,
      archiveLockDays: null,
      unfinished: [],
      policy: { full: 1, diff: 0, logical: 0, archiveDays: 10, minFull: 1, longTerm: { daily: 0, weekly: 0, monthly: 0, yearly: 0 } },
      tiers: { warmAfterDays: 30, coldAfterDays: 90, coldClass: 'GLACIER' },
    };
    const { catalog, now } = buildCatalog(spec);
    const full = catalog.backups.find((b) => b.type === 'full')!;
    const plan = planRetention(catalog, spec.policy, now);
    expect(plan.keep.find((k) => k.id === full.id)?.reasons).toEqual(['newest full', 'point-in-time window']);
    const runs = archiveRuns(catalog.archive);
    const t = iso(now.getTime() - 5 * DAY);
    expect(resolveTime(catalog.backups, runs, t)?.chain.map((b) => b.id)).toEqual([full.id]);
    // Without the full, the same point has no way back: the property above would report it.
    expect(resolveTime(catalog.backups.filter((b) => b !== full), runs, t)).toBeUndefined();
    // WAL older than the full's start goes; the partial's older generations go too.
    const reasons = plan.delete.map((d) => d.reason);
    expect(reasons.some((r) => r.startsWith('archive no kept backup'))).toBe(true);
    expect(reasons).not.toContain('partial superseded by a newer generation or the completed piece');
  });
});

describe('long-term periods', () => {
  it('are calendar days, ISO weeks (from Monday), months and years in UTC', () => {
    const monday = '2026-11-30T00:00:00.000Z';
    expect(periodOf('weekly', monday)).toBe(periodOf('weekly', '2026-12-06T23:59:59.999Z'));
    expect(periodOf('weekly', monday)).toBe(periodOf('weekly', '2026-11-29T23:59:59.999Z') + 1);
    expect(periodLabel('weekly', periodOf('weekly', '2026-12-02T12:00:00Z'))).toBe('week of 2026-11-30');
    expect(periodLabel('monthly', periodOf('monthly', '2026-12-31T23:59:59Z'))).toBe('2026-12');
    expect(periodOf('monthly', '2027-01-01T00:00:00Z')).toBe(periodOf('monthly', '2026-12-31T23:59:59Z') + 1);
    expect(new Date(periodStart('yearly', 2027)).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(periodLabel('daily', periodOf('daily', '2026-02-28T23:00:00Z') + 1)).toBe('2026-03-01');
  });
});
