import { z } from 'zod';
import { SourcePolicySchema, type SourcePolicy } from './config/retention';
import { ConfigError } from './errors';
import { lambdaLog } from './aws/lambda-telemetry';
import { openStore } from './repository/open-store';
import type { ObjectStore } from './repository/storage';

/**
 * What the Lambdas read from their environment (docs/aws-architecture.md, "Lambda environment").
 * No secrets live here: the functions read manifests only, never a data key.
 */

let cached: { readonly key: string; readonly store: ObjectStore } | undefined;

/** The repository store, one (and one S3 client) per container, reused across invocations. */
export function storeFromEnvironment(): ObjectStore {
  const url = process.env.TIDEMARK_REPOSITORY_URL;
  if (!url) throw new ConfigError('TIDEMARK_REPOSITORY_URL is not set (expected s3://bucket/prefix)');
  // Only tests and local runs set an endpoint; on AWS the region's S3 endpoint is used (AWS_REGION).
  const endpoint = process.env.TIDEMARK_S3_ENDPOINT || undefined;
  const key = `${url} ${endpoint ?? ''}`;
  if (cached?.key !== key) cached = { key, store: openStore({ url, endpoint }) };
  return cached.store;
}

export function metricsNamespace(): string {
  return process.env.TIDEMARK_METRICS_NAMESPACE || 'Tidemark';
}

export function sourcesFromEnvironment(): string[] {
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

/** One JSON log record in the shape of log.ts: Powertools Logger on Lambda, console elsewhere (aws/lambda-telemetry.ts). */
export function logLine(level: 'warn' | 'error', message: string, fields: Record<string, unknown>): void {
  lambdaLog(level, message, fields);
}

const PoliciesSchema = z.array(z.strictObject({ sources: z.array(z.string().min(1)).min(1), policy: SourcePolicySchema })).min(1);

/**
 * The retention function's policies, per source: TIDEMARK_RETENTION_POLICIES is the JSON of
 * `[{ "sources": ["<source>", …], "policy": { "retention": {…}, "tiers": {…} } }, …]` the stack
 * writes from the config (each source's merged policy, already checked at synth; sources with the
 * same policy share one entry, so a fleet fits Lambda's 4 KB of environment). Checked again here:
 * a function must not delete by a policy it misread.
 */
export function retentionPoliciesFromEnvironment(): Record<string, SourcePolicy> {
  const raw = process.env.TIDEMARK_RETENTION_POLICIES;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw ?? '');
  } catch {
    throw new ConfigError('TIDEMARK_RETENTION_POLICIES must be JSON: [{ "sources": ["<source>"], "policy": { "retention": {...}, "tiers": {...} } }]');
  }
  const result = PoliciesSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(`TIDEMARK_RETENTION_POLICIES: ${issue.path.join('.')}: ${issue.message}`);
  }
  const policies: Record<string, SourcePolicy> = {};
  for (const { sources, policy } of result.data) {
    for (const source of sources) {
      if (source in policies) throw new ConfigError(`TIDEMARK_RETENTION_POLICIES: source '${source}' has two policies`);
      policies[source] = policy;
    }
  }
  return policies;
}

/** Days of the bucket's default Object Lock retention (TIDEMARK_OBJECT_LOCK_DAYS), if it has one. */
export function objectLockDaysFromEnvironment(): number | undefined {
  const raw = process.env.TIDEMARK_OBJECT_LOCK_DAYS;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,5}$/.test(raw)) throw new ConfigError(`TIDEMARK_OBJECT_LOCK_DAYS must be a whole number of days, got ${JSON.stringify(raw)}`);
  return Number(raw);
}
