import { StorageError, UsageError } from '../errors';
import { predictRto as predictFromHistory } from '../drill/measure';
import { DRILL_REPORT_FORMAT, drillReportKey, type DrillReport, type DrillTarget } from '../drill/report';
import { readDrillReport, readDrillReports, writeDrillReport } from '../drill/report-store';
import { logLine } from '../lambda-environment';
import { defaultMetricsSink, emitMetrics, type MetricValue } from '../metrics';
import { backupPrefix } from '../repository/layout';
import type { ObjectStore } from '../repository/storage';
import { isDrillKind, type DrillKind, type DrillSources, type DrillTargetOutput } from './drill-target';

/**
 * The last step of every drill (the drill-record Lambda on AWS, in process locally): read the
 * report the worker wrote, or — when the worker died before writing one — write a failed report
 * itself, never over an existing one; then emit the drill's metrics (DrillSucceeded/DrillFailed,
 * DrillRtoSeconds, DrillRpoSeconds, DrillPredictedRtoSeconds per source) and say whether the drill
 * passed. A drill passes only when its report says so, no step failed, and teardown ran.
 */

/** A Catch output of Step Functions. */
export interface StepError {
  readonly Error?: string;
  readonly Cause?: string;
}

export interface DrillRecordEvent {
  readonly source: string;
  readonly kind: DrillKind;
  /** The drill-target output; null (or without an id) when choosing the target itself failed. */
  readonly drill: DrillTargetOutput | { readonly refused: true } | null;
  /** The step that failed before teardown (worker exit, RDS restore, checks); `{}` or absent: none. */
  readonly error?: StepError | null;
  /** Teardown (drill-cleanup, DeleteDBInstance) failed; `{}` or absent: it did not. */
  readonly cleanupError?: StepError | null;
}

export interface DrillRecordOutput {
  readonly source: string;
  readonly kind: DrillKind;
  readonly ok: boolean;
  readonly drillId?: string;
  /** The report's key, when there is a report (not for verify). */
  readonly report?: string;
  readonly rtoSeconds?: number;
  readonly rpoSeconds?: number;
  readonly predictedRtoSeconds?: number;
  /** One line for the notification: why the drill failed. */
  readonly reason?: string;
}

export interface DrillRecordOptions {
  /** @default 'Tidemark' */
  readonly namespace?: string;
  /** Where EMF lines go. @default defaultMetricsSink (stdout on Lambda, console elsewhere) */
  readonly write?: (line: string) => void;
  readonly now?: () => Date;
}

/** What rehydrating a cold chain costs before a restore can read it (standard retrieval, upper end). */
export const REHYDRATION_SECONDS: Readonly<Record<string, number>> = { GLACIER: 5 * 3600, DEEP_ARCHIVE: 12 * 3600 };

// A Cause can be a whole ECS task description: the report and the log need the gist.
const MAX_REASON = 500;

export async function recordDrill(store: ObjectStore, sources: DrillSources, event: DrillRecordEvent, options: DrillRecordOptions = {}): Promise<DrillRecordOutput> {
  const { source, kind } = parseEvent(event);
  const drill = event.drill && 'id' in event.drill && typeof event.drill.id === 'string' ? event.drill : null;
  const namespace = options.namespace ?? 'Tidemark';
  const write = options.write ?? defaultMetricsSink;
  const now = options.now ?? (() => new Date());
  const dimensions = { Source: source };
  const stepError = event.error?.Error ? describeError(event.error) : undefined;
  const cleanupError = event.cleanupError?.Error ? describeError(event.cleanupError) : undefined;

  // Choosing the target failed, or this was a verify: there is no drill report to read or write.
  if (drill === null || drill.mode === 'verify') {
    const reason = drill === null ? `no drill target: ${stepError ?? 'unknown error'}` : stepError && `verify failed: ${stepError}`;
    const ok = reason === undefined;
    emitMetrics(namespace, dimensions, ok ? { DrillSucceeded: { value: 1, unit: 'Count' } } : { DrillFailed: { value: 1, unit: 'Count' } }, write);
    if (!ok) logLine('error', 'drill failed', { source, kind, reason });
    return { source, kind, ok, ...(drill ? { drillId: drill.id } : {}), ...(reason ? { reason: truncate(reason) } : {}) };
  }

  const key = drillReportKey(source, drill.id);
  let report = await readReport(store, key);
  if (report === undefined) {
    // The worker died (killed, out of disk, image pull) or never ran: the drill failed, and the
    // history must say so. Reports are written once, so one that lands meanwhile wins.
    const failed = failedReport(sources, drill, stepError ?? 'the drill ended without writing its report', cleanupError === undefined, now());
    report = (await writeDrillReport(store, failed)).written ? failed : (await readReport(store, key))!;
  }

  const predictedRtoSeconds = report.predictedRtoSeconds ?? (await predictRto(store, source, report));
  const reasons = [
    !report.ok ? (report.error ?? failedChecks(report) ?? 'the drill report says it failed') : undefined,
    report.ok && stepError ? `a drill step failed after the report was written: ${stepError}` : undefined,
    cleanupError ? `teardown failed, the throwaway instance may still exist: ${cleanupError}` : undefined,
  ].filter((r): r is string => r !== undefined);
  const ok = reasons.length === 0;

  const metrics: Record<string, MetricValue> = ok ? { DrillSucceeded: { value: 1, unit: 'Count' } } : { DrillFailed: { value: 1, unit: 'Count' } };
  if (report.rtoSeconds !== undefined) metrics.DrillRtoSeconds = { value: report.rtoSeconds, unit: 'Seconds' };
  if (report.rpoSeconds !== undefined) metrics.DrillRpoSeconds = { value: report.rpoSeconds, unit: 'Seconds' };
  if (predictedRtoSeconds !== undefined) metrics.DrillPredictedRtoSeconds = { value: predictedRtoSeconds, unit: 'Seconds' };
  emitMetrics(namespace, dimensions, metrics, write);
  const reason = reasons.length > 0 ? truncate(reasons.join('; ')) : undefined;
  if (reason) logLine('error', 'drill failed', { source, kind, drillId: drill.id, report: key, reason });

  return {
    source,
    kind,
    ok,
    drillId: drill.id,
    report: key,
    ...(report.rtoSeconds !== undefined ? { rtoSeconds: report.rtoSeconds } : {}),
    ...(report.rpoSeconds !== undefined ? { rpoSeconds: report.rpoSeconds } : {}),
    ...(predictedRtoSeconds !== undefined ? { predictedRtoSeconds } : {}),
    ...(reason ? { reason } : {}),
  };
}

/** The report at `key`, undefined when there is none; one that exists but cannot be used is an error. */
async function readReport(store: ObjectStore, key: string): Promise<DrillReport | undefined> {
  const read = await readDrillReport(store, key);
  if (read?.unreadable) throw new StorageError(`drill report ${key} cannot be read: ${read.unreadable.reason}`);
  return read?.report;
}

function failedReport(sources: DrillSources, drill: DrillTargetOutput, error: string, cleanedUp: boolean, now: Date): DrillReport {
  const described = sources[drill.source];
  const target: DrillTarget = drill.target === 'latest' ? { kind: 'latest' } : { kind: 'time', at: drill.target, ...(drill.random ? { random: true } : {}) };
  return {
    format: DRILL_REPORT_FORMAT,
    id: drill.id,
    source: drill.source,
    engine: described?.engine ?? 'postgres',
    method: drill.mode === 'rds' ? 'rds-point-in-time' : 'unknown',
    kind: drill.kind,
    target,
    startedAt: drill.startedAt,
    finishedAt: now.toISOString(),
    ok: false,
    ...(described?.rtoSeconds !== undefined ? { rtoObjectiveSeconds: described.rtoSeconds } : {}),
    ...(described?.rpoSeconds !== undefined ? { rpoObjectiveSeconds: described.rpoSeconds } : {}),
    checks: [],
    error: truncate(error),
    cleanedUp,
  };
}

/**
 * Predicted RTO when the worker gave none (it died, or an RDS check wrote the report): the same
 * prediction the worker makes (lib/core/drill/measure.ts) over this source's earlier drills, times
 * the bytes of this drill's backup, plus rehydration when any object of it sits in a cold class.
 * Nothing to go on (no history, no size): no prediction.
 */
export async function predictRto(store: ObjectStore, source: string, report: DrillReport): Promise<number | undefined> {
  const history = (await readDrillReports(store, source, { newest: 21 })).filter((r) => r.id !== report.id).slice(-20);
  const bytes = report.bytes ?? history.filter((r) => r.ok && r.bytes !== undefined).at(-1)?.bytes;
  if (bytes === undefined || !history.some((r) => r.ok && r.rtoSeconds !== undefined && (r.bytes ?? 0) > 0)) return undefined;
  return predictFromHistory(history, bytes, await rehydrationSeconds(store, source, report.backupId))?.seconds;
}

async function rehydrationSeconds(store: ObjectStore, source: string, backupId: string | undefined): Promise<number> {
  if (!backupId) return 0;
  const { objects } = await store.list(backupPrefix(source, backupId));
  return Math.max(0, ...objects.map((o) => REHYDRATION_SECONDS[o.storageClass ?? ''] ?? 0));
}

function failedChecks(report: DrillReport): string | undefined {
  const failed = report.checks.filter((c) => !c.ok);
  return failed.length > 0 ? failed.map((c) => `${c.name}: ${c.detail}`).join('; ') : undefined;
}

/**
 * Error name and what a person needs of the cause: the worker's last line and how it ended
 * (locally `{ exitCode, signal, lastLine }`; on AWS the ECS task description with StoppedReason
 * and the container's ExitCode and Reason, e.g. "OutOfMemoryError: Container killed…").
 */
function describeError(error: StepError): string {
  const name = error.Error ?? 'Error';
  let cause = error.Cause ?? '';
  try {
    const p = JSON.parse(cause) as {
      lastLine?: string;
      exitCode?: number | null;
      signal?: string;
      errorMessage?: string;
      StoppedReason?: string;
      Containers?: { ExitCode?: number; Reason?: string }[];
    };
    const container = p.Containers?.[0];
    const how = p.signal
      ? `killed by ${p.signal}`
      : typeof p.exitCode === 'number'
        ? `exit ${p.exitCode}`
        : container?.ExitCode !== undefined
          ? `exit ${container.ExitCode}`
          : undefined;
    const what = [p.lastLine, p.errorMessage, container?.Reason, p.StoppedReason].find((t) => typeof t === 'string' && t.trim() !== '');
    cause = [how, what].filter(Boolean).join(': ') || cause;
  } catch {
    // a plain-text cause
  }
  return truncate(cause ? `${name}: ${cause}` : name);
}

function parseEvent(event: DrillRecordEvent): DrillRecordEvent {
  const e = (event ?? {}) as Partial<DrillRecordEvent>;
  if (typeof e.source !== 'string' || e.source === '') throw new UsageError(`drill-record: event.source must be a source name, got ${JSON.stringify(e.source)}`);
  if (!isDrillKind(e.kind)) throw new UsageError(`drill-record: event.kind is not a drill kind: ${JSON.stringify(e.kind)}`);
  if (e.drill !== null && typeof e.drill !== 'object') throw new UsageError('drill-record: event.drill must be the drill-target output or null');
  return e as DrillRecordEvent;
}

function truncate(text: string): string {
  return text.length <= MAX_REASON ? text : `${text.slice(0, MAX_REASON)}…`;
}
