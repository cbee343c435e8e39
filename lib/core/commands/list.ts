import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import type { BackupType } from '../engines/backup-types';
import { registrationOf } from '../engines/registry';
import { archiveFor, newestWindowEnd, type ArchiveDdlEvent, type ArchiveDescription, type ArchiveWindow } from '../engines/continuous-archive';
import { restorableWindow } from '../engines/window';
import type { ArchiveStream } from '../repository/archive';
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

/** The continuous archive (WAL, binlog): its unbroken runs, the gaps between them, and the windows they give. */
export interface ListedArchive extends ArchiveDescription {
  /** What is archived: PostgreSQL WAL or MySQL binlog. */
  readonly stream: ArchiveStream;
  /** Per run that holds a backup it replays onto: from that backup to the run's end; a gap splits them. */
  readonly windows: readonly ArchiveWindow[];
}

/** `tidemark list --json` (DESIGN.md §5); `incomplete`, `problems` and `archive` are additions. */
export interface ListResult {
  readonly backups: readonly ListedBackup[];
  readonly window: RestorableWindow | null;
  readonly incomplete: readonly string[];
  readonly problems: readonly CatalogProblem[];
  readonly archive?: ListedArchive;
  /** With --ddl: drops and truncates found in the archive. */
  readonly ddl?: readonly ArchiveDdlEvent[];
}

function warningsOf(m: BackupManifest): { warnings?: readonly string[] } {
  const warnings = registrationOf(m.details.kind).warnings?.(m.details) ?? [];
  return warnings.length > 0 ? { warnings } : {};
}

export async function runList(config: TidemarkConfig, source: string, options: { ddl?: boolean; signal?: AbortSignal } = {}): Promise<ListResult> {
  const src = sourceConfig(config, source);
  const repository = await Repository.open(config);
  const registration = archiveFor(src);
  const [catalog, archive] = await Promise.all([
    repository.catalog(source),
    registration ? registration.load().then(async (a) => ({ a, description: await a.describe(repository.store, source) })) : undefined,
  ]);
  let listedArchive: ListedArchive | undefined;
  if (registration && archive?.description) {
    const bases = catalog.backups.filter((b) => registration.replaysOnto.includes(b.details.kind));
    listedArchive = { ...archive.description, stream: registration.stream, windows: archive.a.windows(archive.description, bases) };
  }
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
    window: restorableWindow(catalog.backups, listedArchive ? newestWindowEnd(listedArchive.windows) : undefined),
    incomplete: catalog.incomplete,
    problems: catalog.problems,
    ...(listedArchive ? { archive: listedArchive } : {}),
    ...(options.ddl ? { ddl: (await archive?.a.ddlEvents?.(repository, source, { signal: options.signal })) ?? [] } : {}),
  };
}
