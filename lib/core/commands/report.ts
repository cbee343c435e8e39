import { rename, rm, writeFile } from 'node:fs/promises';
import { sourceConfig } from '../config/load';
import { parseDuration } from '../config/duration';
import type { TidemarkConfig } from '../config/schema';
import type { DrillReport } from '../drill/report';
import { listDrillReports } from '../drill/report-store';
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

/** The newest drill reports of a source, oldest first (by start); unreadable ones become one line each. */
export async function readDrillReports(store: ObjectStore, source: string, signal?: AbortSignal): Promise<{ drills: DrillReport[]; problems: string[] }> {
  const { reports, unreadable } = await listDrillReports(store, source, { newest: MAX_DRILLS, signal });
  const drills = [...reports].sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
  return { drills, problems: unreadable.map((u) => `drill report ${u.key}: ${u.reason}`).sort() };
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
