import pLimit from 'p-limit';
import { z } from 'zod';
import { StorageError } from '../errors';
import { listPages, type ObjectStore } from '../repository/storage';
import { DRILL_REPORT_FORMAT, drillReportKey, drillsPrefix, type DrillReport } from './report';

/**
 * Drill reports in the repository: written once (the store's put never overwrites), read back for
 * the predicted RTO, the record step, `tidemark status` and the report page — all through this one
 * reader, which checks each report against {@link DrillReportSchema} and names the ones it cannot
 * use instead of failing on them. A report is plain JSON: it holds no data, only timings, names and
 * check results.
 */

const PARALLEL_READS = 16;

const nonNegative = z.number().finite().nonnegative().optional();
const isoTime = z.string().refine((t) => !Number.isNaN(Date.parse(t)), { message: 'not a time' });

/**
 * What readers rely on in a drill report. Extra keys pass (a newer drill may record more); a report
 * that lacks these is listed as unreadable, with the first thing wrong.
 */
export const DrillReportSchema = z.looseObject({
  format: z.literal(DRILL_REPORT_FORMAT),
  id: z.string().min(1),
  source: z.string().min(1),
  startedAt: isoTime,
  finishedAt: isoTime,
  ok: z.boolean(),
  kind: z.string(),
  method: z.string(),
  target: z.union([z.looseObject({ kind: z.literal('latest') }), z.looseObject({ kind: z.literal('time'), at: isoTime, random: z.boolean().optional() })]),
  restoredPoint: isoTime.optional(),
  rtoSeconds: nonNegative,
  rpoSeconds: nonNegative,
  predictedRtoSeconds: nonNegative,
  bytes: nonNegative,
  checks: z.array(z.looseObject({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  error: z.string().optional(),
  cleanedUp: z.boolean(),
  steps: z.array(z.looseObject({ name: z.string(), seconds: z.number().finite().nonnegative() })).optional(),
});

/** A report under `<source>/drills/` that cannot be used, and why (one line). */
export interface UnreadableDrillReport {
  readonly key: string;
  readonly reason: string;
}

export interface DrillReportListing {
  /** Readable reports, oldest first (ids, and so keys, sort by time). */
  readonly reports: DrillReport[];
  /** Unreadable ones, by key. */
  readonly unreadable: UnreadableDrillReport[];
  /** The newest key read (readable or not), when there is one. */
  readonly newestKey?: string;
}

export async function writeDrillReport(store: ObjectStore, report: DrillReport): Promise<{ written: boolean }> {
  try {
    await store.put(drillReportKey(report.source, report.id), Buffer.from(`${JSON.stringify(report, null, 2)}\n`), { contentType: 'application/json' });
    return { written: true };
  } catch (e) {
    // Immutable: whoever wrote first (the worker, or the record step after it died) keeps the record.
    if (e instanceof StorageError && e.code === 'ObjectExists') return { written: false };
    throw e;
  }
}

/** Why `value` is not a drill report of `source` (undefined: it is one). */
export function drillReportProblem(value: unknown, source?: string): string | undefined {
  const parsed = DrillReportSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `not a drill report of format ${DRILL_REPORT_FORMAT} (${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message})`;
  }
  if (source !== undefined && parsed.data.source !== source) return `a drill report of source '${parsed.data.source}', not '${source}'`;
  return undefined;
}

/**
 * One report by key: the report, `undefined` when there is none, or what is wrong with it. Storage
 * failures other than a missing key are thrown (the repository is unreachable: not the report's fault).
 */
export async function readDrillReport(store: ObjectStore, key: string, source?: string): Promise<{ report?: DrillReport; unreadable?: UnreadableDrillReport } | undefined> {
  let text: string;
  try {
    text = (await store.getBytes(key)).toString('utf8');
  } catch (e) {
    if (e instanceof StorageError && e.code === 'NoSuchKey') return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { unreadable: { key, reason: `not JSON (${(e as Error).message})` } };
  }
  const problem = drillReportProblem(value, source);
  return problem === undefined ? { report: value as DrillReport } : { unreadable: { key, reason: problem } };
}

/** The reports of a source (the newest `newest` keys, when given), checked; unreadable ones listed with their reason. */
export async function listDrillReports(store: ObjectStore, source: string, options: { readonly newest?: number; readonly signal?: AbortSignal } = {}): Promise<DrillReportListing> {
  const keys: string[] = [];
  for await (const page of listPages(store, drillsPrefix(source))) for (const o of page.objects) if (o.key.endsWith('.json')) keys.push(o.key);
  keys.sort();
  const chosen = options.newest === undefined ? keys : keys.slice(-options.newest);
  const limit = pLimit(PARALLEL_READS);
  const read = await Promise.all(
    chosen.map((key) =>
      limit(async () => {
        options.signal?.throwIfAborted();
        return readDrillReport(store, key, source);
      }),
    ),
  );
  return {
    reports: read.flatMap((r) => (r?.report ? [r.report] : [])),
    unreadable: read.flatMap((r) => (r?.unreadable ? [r.unreadable] : [])),
    ...(chosen.length > 0 ? { newestKey: chosen[chosen.length - 1] } : {}),
  };
}

/** The readable reports of a source (the newest `newest` of them, when given), oldest first; unreadable ones are skipped. */
export async function readDrillReports(store: ObjectStore, source: string, options: { readonly newest?: number } = {}): Promise<DrillReport[]> {
  return (await listDrillReports(store, source, options)).reports;
}
