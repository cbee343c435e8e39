import { randomBytes } from 'node:crypto';
import { ConfigError, RecoveryTargetOutOfRange, UsageError } from '../errors';
import { restorableWindow } from '../engines/window';
import type { RestorableWindow } from '../engines/recovery-target';
import { readCatalog } from '../repository/catalog';
import type { ObjectStore } from '../repository/storage';
import { newestRestorablePoint } from './newest-point';

/**
 * The first step of the drill state machine (the drill-target Lambda on AWS, in process locally):
 * decide what the drill restores — the newest point, a random point of the restorable window, or
 * a given one — and hand the rest of the machine everything it needs as plain data: the drill id,
 * the target, the start time (RTO counts from here), which path to take (verify, a self-managed
 * drill task, an RDS restore) and the worker's argv. A point outside the window is refused here,
 * before anything is provisioned.
 */

export const DRILL_KINDS = ['verify', 'restore', 'full', 'manual'] as const;
export type DrillKind = (typeof DRILL_KINDS)[number];

export interface DrillTargetEvent {
  readonly source: string;
  readonly kind: DrillKind;
  /** `latest`, `random` or an ISO time. @default - `random` for a full drill, else `latest` */
  readonly at?: string;
}

/** What the drill machine knows of a source (TIDEMARK_DRILL_SOURCES, written by the stack). */
export interface DrillSource {
  readonly engine: 'postgres' | 'mysql';
  readonly rtoSeconds?: number;
  readonly rpoSeconds?: number;
  /** An RDS instance source: the drill restores a new instance from RDS's own backups. */
  readonly rds?: { readonly instance?: string; readonly cluster?: string; readonly securityGroupIds?: readonly string[] };
}

export type DrillSources = Readonly<Record<string, DrillSource>>;

/**
 * How far back a drill restores an RDS instance to a point in time. RDS keeps automated backups for
 * the instance's retention (1–35 days, 7 by the console's default); the drill cannot see it without
 * DescribeDBInstances, so older points restore the newest Tidemark snapshot at or before them.
 */
export const RDS_PITR_SECONDS = 7 * 24 * 3600;

/** Prefix of every instance a drill creates; the drill role may delete only instances named so. */
export const RDS_DRILL_INSTANCE_PREFIX = 'tidemark-drill-';

export interface RdsDrillPlan {
  /** `latest` (UseLatestRestorableTime), `point-in-time` (RestoreTime) or `snapshot`. */
  readonly restore: 'latest' | 'point-in-time' | 'snapshot';
  readonly sourceInstance: string;
  /** The throwaway instance: `tidemark-drill-<drill id, lower case>`. */
  readonly instance: string;
  readonly restoreTime?: string;
  readonly snapshot?: string;
  readonly securityGroupIds: readonly string[];
}

export interface DrillTargetOutput {
  readonly source: string;
  readonly kind: DrillKind;
  readonly id: string;
  readonly startedAt: string;
  /** `latest` or the ISO point the drill restores. */
  readonly target: string;
  readonly random: boolean;
  /** Which branch of the machine runs. */
  readonly mode: 'verify' | 'task' | 'rds';
  /** argv of the worker task: `verify <source>` or `drill <source> --id …`. */
  readonly workerCommand: readonly string[];
  /** argv of the teardown task (self-managed drills). */
  readonly cleanupCommand: readonly string[];
  readonly rds?: RdsDrillPlan;
}

/** Drill ids sort by time, like backup ids: `20261201T073000Z-3f9a1c`. */
export function newDrillId(at: Date = new Date()): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

export function isDrillKind(value: unknown): value is DrillKind {
  return typeof value === 'string' && (DRILL_KINDS as readonly string[]).includes(value);
}

/**
 * The point a drill restores, from the window: pure, so the property tests can hammer it. `random`
 * draws uniformly inside the window with `draw()` ∈ [0, 1); a given time must lie inside it.
 */
export function chooseDrillPoint(
  source: string,
  at: string,
  window: RestorableWindow | null,
  draw: () => number = Math.random,
): { target: string; random: boolean } {
  if (window === null) throw new RecoveryTargetOutOfRange(`drill of '${source}': there is no backup to restore yet; run a backup first`);
  if (at === 'latest') return { target: 'latest', random: false };
  if (at === 'random') {
    const from = Date.parse(window.from);
    const to = Date.parse(window.to);
    // Whole seconds after the window's start: the point never leaves the window by rounding.
    const r = Math.min(Math.max(draw(), 0), 1 - Number.EPSILON);
    return { target: new Date(from + Math.floor(((to - from) * r) / 1000) * 1000).toISOString(), random: true };
  }
  const parsed = Date.parse(at);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(at) || Number.isNaN(parsed)) {
    throw new UsageError(`drill of '${source}': --at must be latest, random or an ISO time with a zone (2026-12-01T02:14:00Z), got '${at}'`);
  }
  const iso = new Date(parsed).toISOString();
  if (parsed < Date.parse(window.from) || parsed > Date.parse(window.to)) {
    throw new RecoveryTargetOutOfRange(
      `drill of '${source}': ${iso} is outside the restorable window (${window.from} … ${window.to}); see: tidemark list ${source}`,
    );
  }
  return { target: iso, random: false };
}

/** The restorable window as list and restore see it, from the manifests and the continuous archive. */
export async function drillWindow(store: ObjectStore, source: string): Promise<RestorableWindow | null> {
  const [catalog, newest] = await Promise.all([readCatalog(store, source), newestRestorablePoint(store, source)]);
  const window = restorableWindow(catalog.backups);
  if (window === null || newest === null) return window;
  return { from: window.from, to: newest.time > window.to ? newest.time : window.to };
}

export interface ChooseDrillTargetOptions {
  readonly now?: Date;
  readonly draw?: () => number;
  /** The window, when the caller knows it better (RDS: its own PITR window). @default - from the repository */
  readonly window?: RestorableWindow | null;
}

export async function chooseDrillTarget(
  store: ObjectStore,
  sources: DrillSources,
  event: DrillTargetEvent,
  options: ChooseDrillTargetOptions = {},
): Promise<DrillTargetOutput> {
  const { source, kind } = parseEvent(event);
  const described = sources[source];
  if (!described) throw new UsageError(`drill: no source named '${source}' in this deployment (known: ${Object.keys(sources).join(', ') || 'none'})`);
  const now = options.now ?? new Date();
  const id = newDrillId(now);
  const startedAt = now.toISOString();
  const cleanupCommand = ['drill-cleanup', source, '--id', id];
  if (kind === 'verify') {
    return { source, kind, id, startedAt, target: 'latest', random: false, mode: 'verify', workerCommand: ['verify', source], cleanupCommand };
  }

  const at = event.at ?? (kind === 'full' ? 'random' : 'latest');
  const rdsInstance = described.rds?.instance;
  if (described.rds && !rdsInstance) {
    throw new UsageError(`drill of '${source}': Aurora clusters (rds.cluster) cannot be drilled yet; only RDS instances (rds.instance)`);
  }
  const snapshots = rdsInstance ? await rdsSnapshots(store, source) : [];
  const window = options.window !== undefined ? options.window : rdsInstance ? rdsWindow(now, snapshots) : await drillWindow(store, source);
  const { target, random } = chooseDrillPoint(source, at, window, options.draw);

  if (rdsInstance) {
    const pointInTime = target === 'latest' || Date.parse(target) >= now.getTime() - RDS_PITR_SECONDS * 1000;
    const snapshot = pointInTime ? undefined : snapshots.filter((s) => s.time <= target).at(-1);
    if (!pointInTime && !snapshot) {
      throw new RecoveryTargetOutOfRange(`drill of '${source}': ${target} is older than RDS point-in-time restore reaches (${RDS_PITR_SECONDS / 86400} days) and no snapshot is at or before it`);
    }
    const rds: RdsDrillPlan = {
      restore: target === 'latest' ? 'latest' : snapshot ? 'snapshot' : 'point-in-time',
      sourceInstance: rdsInstance,
      instance: `${RDS_DRILL_INSTANCE_PREFIX}${id.toLowerCase()}`,
      ...(target !== 'latest' && !snapshot ? { restoreTime: target } : {}),
      ...(snapshot ? { snapshot: snapshot.identifier } : {}),
      securityGroupIds: [...(described.rds?.securityGroupIds ?? [])],
    };
    return { source, kind, id, startedAt, target, random, mode: 'rds', workerCommand: [], cleanupCommand, rds };
  }
  const workerCommand = ['drill', source, '--id', id, '--target', target, ...(random ? ['--random'] : []), '--kind', kind, '--started-at', startedAt];
  return { source, kind, id, startedAt, target, random, mode: 'task', workerCommand, cleanupCommand };
}

/**
 * An RDS instance's window: its own point-in-time window (assumed RDS_PITR_SECONDS, ending about
 * five minutes ago; RestoreDBInstanceToPointInTime refuses a time outside the real one with its own
 * message, which the drill reports), extended back to the oldest Tidemark snapshot.
 */
function rdsWindow(now: Date, snapshots: readonly { time: string }[]): RestorableWindow {
  const pitrFrom = new Date(now.getTime() - RDS_PITR_SECONDS * 1000).toISOString();
  const from = snapshots.length > 0 && snapshots[0].time < pitrFrom ? snapshots[0].time : pitrFrom;
  return { from, to: new Date(now.getTime() - 5 * 60_000).toISOString() };
}

/** The source's RDS snapshot backups, oldest first: their restore point and snapshot identifier. */
async function rdsSnapshots(store: ObjectStore, source: string): Promise<{ time: string; identifier: string }[]> {
  const catalog = await readCatalog(store, source);
  return catalog.backups.flatMap((m) => {
    const details = m.details as { kind: string; snapshotIdentifier?: string };
    return details.kind === 'rds-snapshot' && details.snapshotIdentifier ? [{ time: m.restorePoint.time, identifier: details.snapshotIdentifier }] : [];
  });
}

function parseEvent(event: DrillTargetEvent): DrillTargetEvent {
  const e = (event ?? {}) as Partial<DrillTargetEvent>;
  if (typeof e.source !== 'string' || e.source === '') throw new UsageError(`drill: event.source must be a source name, got ${JSON.stringify(e.source)}`);
  if (!isDrillKind(e.kind)) throw new UsageError(`drill: event.kind must be one of ${DRILL_KINDS.join(', ')}, got ${JSON.stringify(e.kind)}`);
  if (e.at !== undefined && typeof e.at !== 'string') throw new UsageError(`drill: event.at must be latest, random or an ISO time, got ${JSON.stringify(e.at)}`);
  return e as DrillTargetEvent;
}

/** TIDEMARK_DRILL_SOURCES: `{ "<source>": { engine, rtoSeconds?, rpoSeconds?, rds? } }`. */
export function drillSourcesFromEnvironment(raw: string | undefined = process.env.TIDEMARK_DRILL_SOURCES): DrillSources {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw ?? '');
  } catch {
    throw new ConfigError(`TIDEMARK_DRILL_SOURCES must be JSON: { "<source>": { "engine": "postgres" } }, got ${JSON.stringify(raw)}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('TIDEMARK_DRILL_SOURCES must be a JSON object keyed by source name');
  }
  for (const [name, s] of Object.entries(parsed as Record<string, { engine?: unknown }>)) {
    if (s?.engine !== 'postgres' && s?.engine !== 'mysql') throw new ConfigError(`TIDEMARK_DRILL_SOURCES.${name}.engine must be postgres or mysql`);
  }
  return parsed as DrillSources;
}
