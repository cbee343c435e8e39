import pLimit from 'p-limit';
import { logLine } from '../lambda-environment';
import { emitMetrics } from '../metrics';
import type { ObjectStore } from '../repository/storage';
import { newestRestorablePoint, secondsSince } from './newest-point';

/**
 * Every minute (the rpo-check Lambda): for every deployed source, how old is the newest point a
 * restore can reach? Emitted as SecondsSinceNewestRestorablePoint per source; the RPO alarms watch it.
 */
export interface RpoCheckResult {
  /** Sources a datapoint was emitted for. */
  readonly measured: readonly string[];
  /** Sources with no committed backup at all: nothing emitted (see below). */
  readonly withoutBackup: readonly string[];
  /** Sources that could not be checked (logged); nothing emitted, so their alarms breach too. */
  readonly failed: readonly string[];
}

// Each source costs one LIST and usually one GET; a few in flight keeps 50 sources well under a
// second without bursting the S3 client's sockets.
const PARALLEL_SOURCES = 8;

export async function checkRecoveryPoints(store: ObjectStore, sources: readonly string[], namespace = 'Tidemark'): Promise<RpoCheckResult> {
  const limit = pLimit(PARALLEL_SOURCES);
  const measured: string[] = [];
  const withoutBackup: string[] = [];
  const failed: string[] = [];
  await Promise.all(
    sources.map((source) =>
      limit(async () => {
        try {
          const newest = await newestRestorablePoint(store, source);
          if (newest === null) {
            // Deliberately no datapoint. There is no age to report for "never backed up", and any
            // number we invented (0? a huge value?) would be a lie that some graph or alarm trusts.
            // The RPO alarm treats missing data as breaching, so silence pages exactly like a
            // pipeline that stopped running altogether — which, for this source, it has.
            withoutBackup.push(source);
            logLine('warn', 'no restorable point yet; emitting nothing so the RPO alarm breaches', { source });
            return;
          }
          emitMetrics(namespace, { Source: source }, {
            SecondsSinceNewestRestorablePoint: { value: secondsSince(newest.time), unit: 'Seconds' },
          });
          measured.push(source);
          for (const problem of newest.passedOver.problems) logLine('warn', 'unusable backup passed over', { source, ...problem });
        } catch (e) {
          // One broken source must not hide the others' datapoints; its own silence breaches its alarm.
          failed.push(source);
          logLine('error', 'could not check source', { source, error: (e as Error).name, reason: (e as Error).message });
        }
      }),
    ),
  );
  return { measured: measured.sort(), withoutBackup: withoutBackup.sort(), failed: failed.sort() };
}
