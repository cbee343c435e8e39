import { rename, rm, writeFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import { z } from 'zod';
import { sourceConfig } from '../config/load';
import { parseDuration } from '../config/duration';
import type { TidemarkConfig } from '../config/schema';
import { DRILL_REPORT_FORMAT, drillsPrefix, type DrillReport } from '../drill/report';
import { TidemarkError } from '../errors';
import { openStore } from '../repository/open-store';
import { listPages, type ObjectStore, type StoredObjectInfo } from '../repository/storage';
import type { ReportModel, SourceReport } from '../report/model';
import { renderReport } from '../report/render';
import { storageByChain } from '../report/storage';
import { runList } from './list';

/**
 * `tidemark report [<source>] [--out file.html]`: gathers what the page shows from the repository
 * and writes it. The backups, the window and the archive come from `tidemark list`'s own function
 * (runList), so the page and `list` can never disagree; sizes per storage class from one listing
 * of the source's prefix; drills from `<source>/drills/*.json`. Nothing here needs the database.
 */
export const DEFAULT_REPORT_PATH = 'tidemark-report.html';

/** Drill history kept on the page: a few years of weekly and monthly drills. */
const MAX_DRILLS = 300;
const PARALLEL_READS = 16;

export interface ReportOptions {
  /** @default tidemark-report.html */
  readonly out?: string;
  /** The moment ages are measured against. @default now */
  readonly now?: Date;
  readonly signal?: AbortSignal;
}

export interface ReportResult {
  readonly path: string;
  readonly bytes: number;
  readonly sources: readonly { readonly name: string; readonly backups: number; readonly drills: number; readonly error?: string }[];
}

/**
 * What the page relies on in a drill report. Extra keys pass (a newer drill may record more); a
 * report that lacks these is named on the page instead of breaking it.
 */
const finiteSeconds = z.number().finite().nonnegative().optional();
const isoTime = z.string().refine((t) => !Number.isNaN(Date.parse(t)), { message: 'not a time' });
const DrillReportShape = z.looseObject({
  format: z.literal(DRILL_REPORT_FORMAT),
  id: z.string().min(1),
  startedAt: isoTime,
  ok: z.boolean(),
  kind: z.string(),
  method: z.string(),
  target: z.union([z.looseObject({ kind: z.literal('latest') }), z.looseObject({ kind: z.literal('time'), at: isoTime, random: z.boolean().optional() })]),
  restoredPoint: isoTime.optional(),
  rtoSeconds: finiteSeconds,
  rpoSeconds: finiteSeconds,
  predictedRtoSeconds: finiteSeconds,
  checks: z.array(z.looseObject({ name: z.string(), ok: z.boolean(), detail: z.string() })),
  error: z.string().optional(),
  cleanedUp: z.boolean(),
});

function drillReportProblem(v: unknown): string | undefined {
  const parsed = DrillReportShape.safeParse(v);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  return `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`;
}

/** The newest drill reports of a source, oldest first; unreadable ones become one line each. */
export async function readDrillReports(store: ObjectStore, source: string, signal?: AbortSignal): Promise<{ drills: DrillReport[]; problems: string[] }> {
  const keys: string[] = [];
  for await (const page of listPages(store, drillsPrefix(source))) for (const o of page.objects) if (o.key.endsWith('.json')) keys.push(o.key);
  keys.sort();
  const limit = pLimit(PARALLEL_READS);
  const problems: string[] = [];
  const read = await Promise.all(
    keys.slice(-MAX_DRILLS).map((key) =>
      limit(async () => {
        signal?.throwIfAborted();
        try {
          const parsed: unknown = JSON.parse((await store.getBytes(key)).toString('utf8'));
          const problem = drillReportProblem(parsed);
          if (problem === undefined) return parsed as DrillReport;
          problems.push(`drill report ${key}: not a drill report of format ${DRILL_REPORT_FORMAT} (${problem})`);
        } catch (e) {
          if (e instanceof SyntaxError) problems.push(`drill report ${key}: not JSON (${e.message})`);
          else throw e;
        }
        return undefined;
      }),
    ),
  );
  const drills = read.filter((d): d is DrillReport => d !== undefined).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  return { drills, problems: problems.sort() };
}

async function listAll(store: ObjectStore, prefix: string, signal?: AbortSignal): Promise<StoredObjectInfo[]> {
  const objects: StoredObjectInfo[] = [];
  for await (const page of listPages(store, prefix)) {
    signal?.throwIfAborted();
    objects.push(...page.objects);
  }
  return objects;
}

async function sourceReport(config: TidemarkConfig, store: ObjectStore, name: string, signal?: AbortSignal): Promise<SourceReport> {
  const src = sourceConfig(config, name);
  const base = {
    name,
    engine: src.engine,
    ...(src.rto ? { rtoObjectiveSeconds: parseDuration(src.rto) } : {}),
    ...(src.rpo ? { rpoObjectiveSeconds: parseDuration(src.rpo) } : {}),
  };
  try {
    const [list, objects, drills] = await Promise.all([runList(config, name, { signal }), listAll(store, `${name}/`, signal), readDrillReports(store, name, signal)]);
    return { ...base, list, storage: storageByChain(name, list.backups, objects), drills: drills.drills, drillProblems: drills.problems };
  } catch (e) {
    // One unreadable source must not hide the others; the page and the exit code say what failed.
    if (!(e instanceof TidemarkError) || signal?.aborted) throw e;
    return { ...base, drills: [], drillProblems: [], error: e.message };
  }
}

export async function gatherReport(config: TidemarkConfig, source: string | undefined, options: { now?: Date; signal?: AbortSignal } = {}): Promise<ReportModel> {
  const names = source === undefined ? Object.keys(config.sources) : [source];
  for (const name of names) sourceConfig(config, name); // an unknown name fails before any reading
  const store = openStore(config.repository);
  const sources: SourceReport[] = [];
  for (const name of names) sources.push(await sourceReport(config, store, name, options.signal));
  return { generatedAt: (options.now ?? new Date()).toISOString(), repository: store.description, sources };
}

export async function runReport(config: TidemarkConfig, source: string | undefined, options: ReportOptions = {}): Promise<ReportResult> {
  const model = await gatherReport(config, source, options);
  const html = renderReport(model);
  const path = options.out ?? DEFAULT_REPORT_PATH;
  // Written beside and renamed: a page open in a browser is never seen half-written.
  const partial = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(partial, html, { signal: options.signal });
    await rename(partial, path);
  } catch (e) {
    await rm(partial, { force: true });
    if (options.signal?.aborted) throw e;
    throw new TidemarkError(`cannot write the report to ${path}: ${(e as Error).message}`, { cause: e });
  }
  return {
    path,
    bytes: Buffer.byteLength(html),
    sources: model.sources.map((s) => ({ name: s.name, backups: s.list?.backups.length ?? 0, drills: s.drills.length, ...(s.error ? { error: s.error } : {}) })),
  };
}
