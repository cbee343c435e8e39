import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { backupPostgresLogical } from '../engines/postgres/logical-backup';
import { UsageError } from '../errors';
import type { Progress } from '../progress';
import type { BackupManifest, BackupType } from '../repository/manifest';
import { Repository } from '../repository/repository';

/** `tidemark backup --json` (DESIGN.md §5). */
export interface BackupResult {
  readonly id: string;
  readonly type: BackupType;
  readonly bytes: number;
  readonly storedBytes: number;
  readonly seconds: number;
}

export const BACKUP_TYPES: readonly BackupType[] = ['full', 'diff', 'incr', 'logical'];

export interface BackupCommandOptions {
  readonly type: BackupType;
  readonly progress: Progress;
  readonly signal?: AbortSignal;
}

export async function runBackup(config: TidemarkConfig, source: string, options: BackupCommandOptions): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  const src = sourceConfig(config, source);
  if (!BACKUP_TYPES.includes(options.type)) {
    throw new UsageError(`--type ${options.type}: expected one of ${BACKUP_TYPES.join(', ')}`);
  }
  let manifest: BackupManifest;
  if (src.rds && options.type === 'full') {
    const repository = await Repository.open(config);
    const region = src.aws?.region ?? config.aws?.region;
    // Loaded on demand: the RDS SDK is large and only snapshot backups need it.
    const { backupRdsSnapshot } = await import('../engines/rds/snapshot-backup');
    manifest = await backupRdsSnapshot({ repository, source, config: src, region, ...options });
  } else if (src.engine === 'postgres' && options.type === 'logical') {
    const repository = await Repository.open(config);
    manifest = await backupPostgresLogical({ repository, source, config: src, compression: config.compression, ...options });
  } else if (src.rds) {
    const available = src.engine === 'postgres' ? 'full (an RDS snapshot) or logical (pg_dump)' : 'full (an RDS snapshot)';
    throw new UsageError(`--type ${options.type} backups of RDS source '${source}' are not available (available: ${available})`);
  } else {
    throw new UsageError(`--type ${options.type} backups of ${src.engine} sources are not available in this version (available: logical for postgres)`);
  }
  return {
    id: manifest.id,
    type: manifest.type,
    bytes: manifest.plainBytes,
    storedBytes: manifest.storedBytes,
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  };
}
