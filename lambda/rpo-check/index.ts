import pLimit from 'p-limit';
import { newestRestorablePoint, secondsSince } from '../../lib/core/commands/newest-point';
import { ConfigError } from '../../lib/core/errors';
import { emitMetrics } from '../../lib/core/metrics';
import { openStore } from '../../lib/core/repository/open-store';
import type { ObjectStore } from '../../lib/core/repository/storage';

/**
 * Runs every minute (EventBridge): for every deployed source, how old is the newest point a restore
 * can reach? Emitted as SecondsSinceNewestRestorablePoint per source; the RPO alarms watch it.
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

export async function handler(): Promise<RpoCheckResult> {
  const sources = sourcesFromEnvironment();
  const namespace = process.env.TIDEMARK_METRICS_NAMESPACE || 'Tidemark';
  const store = storeFromEnvironment();
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
            log('warn', 'no restorable point yet; emitting nothing so the RPO alarm breaches', { source });
            return;
          }
          emitMetrics(namespace, { Source: source }, {
            SecondsSinceNewestRestorablePoint: { value: secondsSince(newest.time), unit: 'Seconds' },
          });
          measured.push(source);
          for (const problem of newest.passedOver.problems) log('warn', 'unusable backup passed over', { source, ...problem });
        } catch (e) {
          // One broken source must not hide the others' datapoints; its own silence breaches its alarm.
          failed.push(source);
          log('error', 'could not check source', { source, error: (e as Error).name, message: (e as Error).message });
        }
      }),
    ),
  );
  return { measured: measured.sort(), withoutBackup: withoutBackup.sort(), failed: failed.sort() };
}

function sourcesFromEnvironment(): string[] {
  const raw = process.env.TIDEMARK_SOURCES;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw ?? '');
  } catch {
    throw new ConfigError(`TIDEMARK_SOURCES must be a JSON array of source names, got ${JSON.stringify(raw)}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string' && s !== '')) {
    throw new ConfigError(`TIDEMARK_SOURCES must be a JSON array of source names, got ${raw}`);
  }
  return [...new Set(parsed as string[])];
}

let cached: { readonly key: string; readonly store: ObjectStore } | undefined;

/** One store (and S3 client) per container, reused across invocations. */
function storeFromEnvironment(): ObjectStore {
  const url = process.env.TIDEMARK_REPOSITORY_URL;
  if (!url) throw new ConfigError('TIDEMARK_REPOSITORY_URL is not set (expected s3://bucket/prefix)');
  // Only tests and local runs set an endpoint; on AWS the region's S3 endpoint is used (AWS_REGION).
  const endpoint = process.env.TIDEMARK_S3_ENDPOINT || undefined;
  const key = `${url} ${endpoint ?? ''}`;
  if (cached?.key !== key) cached = { key, store: openStore({ url, endpoint }) };
  return cached.store;
}

function log(level: 'warn' | 'error', message: string, fields: Record<string, unknown>): void {
  console[level](JSON.stringify({ level, message, ...fields }));
}
