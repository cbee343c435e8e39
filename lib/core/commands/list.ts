import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import type { BackupType } from '../engines/backup-types';
import { restorableWindow } from '../engines/window';
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
  /** Bytes the engine produced; `storedBytes` after compression and encryption. */
  readonly bytes: number;
  readonly storedBytes: number;
  readonly restorePoint: string;
}

/** `tidemark list --json` (DESIGN.md §5); `incomplete` and `problems` are additions. */
export interface ListResult {
  readonly backups: readonly ListedBackup[];
  readonly window: RestorableWindow | null;
  readonly incomplete: readonly string[];
  readonly problems: readonly CatalogProblem[];
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
      bytes: m.plainBytes,
      storedBytes: m.storedBytes,
      restorePoint: m.restorePoint.time,
    })),
    window: restorableWindow(catalog.backups),
    incomplete: catalog.incomplete,
    problems: catalog.problems,
  };
}
