import { TidemarkError } from '../../../errors';
import type { OpenedBackup, Repository } from '../../../repository/repository';
import { checksumWarnings, type PgPhysicalDetails } from './details';
import { openPhysicalBackup } from './restore';

/**
 * What verify adds for a physical backup beyond reading its own objects: every pack its index
 * points into — its own and its ancestors' — must be stored, and damaged pages found at backup
 * time are reported as warnings.
 */
export async function verifyPhysicalBackup(
  repository: Repository,
  source: string,
  backup: OpenedBackup,
): Promise<{ problems: readonly string[]; warnings: readonly string[] }> {
  const problems: string[] = [];
  try {
    await openPhysicalBackup(repository, source, backup);
  } catch (e) {
    if (!(e instanceof TidemarkError)) throw e;
    problems.push(e.message);
  }
  return { problems, warnings: checksumWarnings(backup.manifest.details as PgPhysicalDetails) };
}
