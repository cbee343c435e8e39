import type { ListResult } from '../commands/list';
import type { DrillReport } from '../drill/report';
import type { SourceStorage } from './storage';

/**
 * Everything `tidemark report` shows, gathered from the repository by commands/report.ts and turned
 * into one HTML page by render.ts. Plain data with no methods, so rendering is a pure function that
 * tests feed by hand, and a time (`generatedAt`) the page measures ages against.
 */
export interface ReportModel {
  readonly generatedAt: string;
  /** The repository, as safe to print (no credentials). */
  readonly repository: string;
  readonly sources: readonly SourceReport[];
}

export interface SourceReport {
  readonly name: string;
  readonly engine: string;
  /** `sources.<name>.rto` / `rpo`, in seconds: the lines on the drill charts. */
  readonly rtoObjectiveSeconds?: number;
  readonly rpoObjectiveSeconds?: number;
  /** What `tidemark list <source>` says: backups, the restorable window, the archive's runs and gaps. */
  readonly list?: ListResult;
  readonly storage?: SourceStorage;
  /** Drill reports, oldest first. */
  readonly drills: readonly DrillReport[];
  /** Drill report objects that could not be read, one line each. */
  readonly drillProblems: readonly string[];
  /** Why this source could not be listed; the page shows it and goes on with the others. */
  readonly error?: string;
}
