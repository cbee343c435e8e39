import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import type { BackupType } from '../engines/backup-types';
import { registrationOf } from '../engines/registry';
import { restorableWindow } from '../engines/window';
import type { BackupManifest } from '../repository/manifest';
import type { CatalogProblem, RestorableWindow } from '../repository/catalog';
import { Repository } from '../repository/repository';

export interface ListedBackup {
  readonly id: string;
  readonly type: BackupType;
  /** The backup method that wrote it (engines/registry.ts): pg-logical, rds-snapshot, … */
  readonly method: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly parent?: string;
  /** Where a diff or incr stands: the full it builds on and how many steps away. */
  readonly chain?: { readonly base: string; readonly depth: number };
  /** Bytes the engine produced; `storedBytes` after compression and encryption. */
  readonly bytes: number;
  readonly storedBytes: number;
  readonly restorePoint: string;
  /** What to know about the backup (pages damaged on the source at backup time). */
  readonly warnings?: readonly string[];
}

/** `tidemark list --json` (DESIGN.md §5); `incomplete` and `problems` are additions. */
export interface ListResult {
  readonly backups: readonly ListedBackup[];
  readonly window: RestorableWindow | null;
  readonly incomplete: readonly string[];
  readonly problems: readonly CatalogProblem[];
}

function warningsOf(m: BackupManifest): { warnings?: readonly string[] } {
  const warnings = registrationOf(m.details.kind).warnings?.(m.details) ?? [];
  return warnings.length > 0 ? { warnings } : {};
}

export async function runList(config: TidemarkConfig, source: string): Promise<ListResult> {
  sourceConfig(config, source);
  const repository = await Repository.open(config);
  const catalog = await repository.catalog(source);
  return {
    backups: catalog.backups.map((m) => ({
      id: m.id,
      type: m.type,
      method: m.details.kind,
      startedAt: m.startedAt,
      finishedAt: m.finishedAt,
      ...(m.parent ? { parent: m.parent } : {}),
      ...(m.chain ? { chain: m.chain } : {}),
      bytes: m.plainBytes,
      storedBytes: m.storedBytes,
      restorePoint: m.restorePoint.time,
      ...warningsOf(m),
    })),
    window: restorableWindow(catalog.backups),
    incomplete: catalog.incomplete,
    problems: catalog.problems,
  };
}
