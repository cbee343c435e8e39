import type { DrillReport } from './report';

/**
 * RTO, RPO and the predicted RTO, as pure functions of times and history (property-tested in
 * test/unit/drill-measure.test.ts).
 */

const seconds = (from: string, to: string): number => Math.round((Date.parse(to) - Date.parse(from)) / 10) / 100;

/** Drill start → checks passed. */
export function rtoSeconds(startedAt: string, checksPassedAt: string): number {
  return Math.max(0, seconds(startedAt, checksPassedAt));
}

/**
 * Target − newest point restored; for `latest`, drill start − newest point restored (what a
 * restore at that moment would have lost). Never negative: a point past the target is a failed
 * check (restored point), not a negative loss.
 */
export function rpoSeconds(target: { kind: 'latest' } | { kind: 'time'; at: string }, startedAt: string, restoredPoint: string): number {
  return Math.max(0, seconds(restoredPoint, target.kind === 'latest' ? startedAt : target.at));
}

export interface RtoPrediction {
  readonly seconds: number;
  /** How it was made, one line. */
  readonly basis: string;
}

/**
 * Seconds per restored byte from earlier passing drills of the source (their median, so one slow
 * or cold drill does not swing it) times this restore's bytes, plus the time S3 needs to rehydrate
 * cold objects first. Without history only the rehydration part is known: undefined when that is 0.
 */
export function predictRto(history: readonly Pick<DrillReport, 'ok' | 'rtoSeconds' | 'bytes'>[], bytes: number, rehydrationSeconds = 0): RtoPrediction | undefined {
  const rates = history
    .filter((r) => r.ok && r.rtoSeconds !== undefined && r.bytes !== undefined && r.bytes > 0)
    .map((r) => r.rtoSeconds! / r.bytes!)
    .sort((a, b) => a - b);
  if (rates.length === 0) {
    return rehydrationSeconds > 0 ? { seconds: rehydrationSeconds, basis: `cold-storage rehydration only (no earlier drill)` } : undefined;
  }
  const mid = Math.floor(rates.length / 2);
  const rate = rates.length % 2 ? rates[mid] : (rates[mid - 1] + rates[mid]) / 2;
  const predicted = Math.round((rate * bytes + rehydrationSeconds) * 100) / 100;
  return {
    seconds: predicted,
    basis: `${rates.length} earlier drill(s): ${(rate * 1024 ** 3).toFixed(1)} s/GiB × ${bytes} bytes${rehydrationSeconds ? ` + ${rehydrationSeconds} s rehydration` : ''}`,
  };
}
