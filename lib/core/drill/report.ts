/**
 * The drill report: one immutable JSON object per drill at `<source>/drills/<id>.json`, written
 * once by whoever finishes the drill (the worker when it ran to the end, the record step when the
 * worker died first). `tidemark drill --json` prints the DESIGN.md §5 subset of it
 * (`ok, target, rtoSeconds, rpoSeconds, checks`); `tidemark report` charts the history.
 */

export const DRILL_REPORT_FORMAT = 1;

/** Drill ids sort by time, like backup ids: `20261201T073000Z-<6 hex>`. */
export const drillsPrefix = (source: string): string => `${source}/drills/`;
export const drillReportKey = (source: string, id: string): string => `${drillsPrefix(source)}${id}.json`;

/** What the drill was asked to restore. */
export type DrillTarget =
  | { readonly kind: 'latest' }
  /** A point of the window: given (`--at ISO`) or drawn at random (`--at random`). */
  | { readonly kind: 'time'; readonly at: string; readonly random?: boolean };

export interface DrillCheck {
  /** e.g. `recorded checksums`, `pg_amcheck`, `CHECK TABLE`, `restored point`, `assertion: <name>`. */
  readonly name: string;
  readonly ok: boolean;
  /** One line a person can read: what was compared and what differed. */
  readonly detail: string;
}

/** One phase of a drill and its seconds: where the RTO went. */
export interface DrillStep {
  readonly name: string;
  readonly seconds: number;
}

export interface DrillReport {
  readonly format: typeof DRILL_REPORT_FORMAT;
  readonly id: string;
  readonly source: string;
  readonly engine: 'postgres' | 'mysql';
  /** Backup method of the restored chain (`logical`, `physical`, `rds-snapshot`). */
  readonly method: string;
  /** Which schedule or person started it (`restore`, `full`, `manual`). */
  readonly kind: string;
  readonly target: DrillTarget;
  /** The backup the restore started from, and its chain (oldest first) for physical ones. */
  readonly backupId?: string;
  readonly chain?: readonly string[];
  /** The newest point the restored data contains (ISO), when known. */
  readonly restoredPoint?: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly ok: boolean;
  /** Drill start → checks passed (absent when the drill failed before its checks passed). */
  readonly rtoSeconds?: number;
  /** Target time − newest point restored; for `latest`, drill start − newest point restored. */
  readonly rpoSeconds?: number;
  /** The source's objectives at the time, for the charts. */
  readonly rtoObjectiveSeconds?: number;
  readonly rpoObjectiveSeconds?: number;
  /** Predicted RTO before the drill ran (drill history + size + rehydration), seconds. */
  readonly predictedRtoSeconds?: number;
  /** Bytes restored (stored bytes of the chain and archive read). */
  readonly bytes?: number;
  readonly checks: readonly DrillCheck[];
  /** Why it failed, one line, naming the object or check. */
  readonly error?: string;
  /** Whether teardown ran to the end (server stopped, scratch removed, RDS instance deleted). */
  readonly cleanedUp: boolean;
  /** The drill's phases in order (start, catalog, throwaway instance, restore, checks), when the worker ran them. */
  readonly steps?: readonly DrillStep[];
}

/** `tidemark drill --json` (DESIGN.md §5). */
export function drillJson(report: DrillReport): { ok: boolean; target: DrillTarget; rtoSeconds?: number; rpoSeconds?: number; checks: readonly DrillCheck[] } {
  return { ok: report.ok, target: report.target, rtoSeconds: report.rtoSeconds, rpoSeconds: report.rpoSeconds, checks: report.checks };
}
