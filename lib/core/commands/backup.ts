import { NEVER_ABORTED } from '../abort';
import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { BACKUP_TYPES, isBackupType, type BackupType } from '../engines/backup-types';
import { backupMethod } from '../engines/registry';
import { RepositoryCreationRace, UsageError } from '../errors';
import type { Progress } from '../progress';
import { Repository } from '../repository/repository';

/** `tidemark backup --json` (DESIGN.md §5). */
export interface BackupResult {
  readonly id: string;
  readonly type: BackupType;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly seconds: number;
}

export interface BackupCommandOptions {
  readonly type: BackupType;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
}

export async function runBackup(config: TidemarkConfig, source: string, options: BackupCommandOptions): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  const src = sourceConfig(config, source);
  if (!isBackupType(options.type)) throw new UsageError(`--type ${options.type}: expected one of ${BACKUP_TYPES.join(', ')}`);
  const registration = backupMethod(source, src, options.type);
  const [repository, method] = await Promise.all([Repository.open(config), registration.load()]);
  const attempt = (repository: Repository) => {
    const run = {
      repository,
      source,
      config: src,
      compression: config.compression,
      region: src.aws?.region ?? config.aws?.region,
      progress: options.progress,
      signal: options.signal ?? NEVER_ABORTED,
    };
    // A backup that failed gives up its claim on the source at once, not when its lease lapses.
    return method.backup(run, options.type).finally(() => repository.endBackups());
  };
  const manifest = await attempt(repository).catch(async (e: unknown) => {
    // The first backup of a new repository lost the race to create it (a streamer started with it):
    // nothing was stored, and the repository exists now, so once more decides it.
    if (!(e instanceof RepositoryCreationRace)) throw e;
    options.progress.note(`another process created the repository ${e.where} at the same moment: starting the backup again`);
    return attempt(await Repository.open(config));
  });
  return {
    id: manifest.id,
    type: manifest.type,
    bytes: manifest.plainBytes,
    storedBytes: manifest.storedBytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}
