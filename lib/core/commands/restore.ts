import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { restorePostgresLogical } from '../engines/postgres/logical-restore';
import { UsageError } from '../errors';
import type { Progress } from '../progress';
import { parseBackupId } from '../repository/backup-id';
import { Repository } from '../repository/repository';

export interface RestoreCommandOptions {
  readonly to: string;
  readonly backup?: string;
  readonly latest?: boolean;
  readonly time?: string;
  readonly lsn?: string;
  readonly table?: string;
  readonly force?: boolean;
  readonly progress: Progress;
}

export interface RestoreResult {
  readonly backup: string;
  readonly type: string;
  readonly target: string;
  readonly restorePoint: string;
  readonly table?: string;
  readonly seconds: number;
}

export async function runRestore(config: TidemarkConfig, source: string, options: RestoreCommandOptions): Promise<RestoreResult> {
  const started = process.hrtime.bigint();
  const src = sourceConfig(config, source);
  const selectors = [options.backup && '--backup', options.latest && '--latest', options.time && '--time', options.lsn && '--lsn'].filter(Boolean);
  if (selectors.length > 1) throw new UsageError(`choose one of ${selectors.join(', ')}`);
  if (options.time || options.lsn) {
    throw new UsageError('point-in-time restore (--time/--lsn) needs continuous WAL archiving, which this version does not have yet; use --backup ID or --latest');
  }
  const selector = options.backup ? { id: parseBackupId(options.backup) } : ({ latest: true } as const);
  const repository = await Repository.open(config);
  if (src.engine !== 'postgres') throw new UsageError(`restoring ${src.engine} sources is not available in this version`);

  // Opened (manifest read, data key unwrapped) while the engine inspects the target.
  const opening = repository.openBackup(source, selector, (m) => m.type === 'logical').then((backup) => {
    if (backup.manifest.type !== 'logical') {
      throw new UsageError(`backup ${backup.manifest.id} is a ${backup.manifest.type} backup; this version restores logical backups only`);
    }
    return backup;
  });
  opening.catch(() => undefined); // the engine awaits it, unless it refuses its own input (--to, --table) first
  const result = await restorePostgresLogical({
    backup: opening,
    target: options.to,
    table: options.table,
    force: options.force ?? false,
    progress: options.progress,
  });
  const backup = await opening;
  return {
    backup: backup.manifest.id,
    type: backup.manifest.type,
    target: result.target,
    restorePoint: backup.manifest.restorePoint.time,
    ...(result.table ? { table: result.table } : {}),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}
