import { BackupNotFound, IntegrityError, UsageError } from '../errors';
import type { Catalog } from '../repository/catalog';
import type { BackupManifest } from '../repository/manifest';
import { assertTimeInWindow, describeRecoveryTarget, type RecoveryTarget } from './recovery-target';
import { resolveTime } from './restore-path';
import { restorableWindow } from './window';

/**
 * The backup a restore starts from, for methods without continuous archiving: the newest one
 * (`latest`), the one named, or the newest at or before a time that is a backup's own point.
 * pgBackRest's rule (command/restore/select) with our errors: each names the target and the way out.
 */
export function selectBackup(
  catalog: Catalog,
  at: RecoveryTarget,
  source: string,
  method: { readonly summary: string; accepts(m: BackupManifest): boolean },
): BackupManifest {
  const usable = catalog.backups.filter((m) => method.accepts(m));
  switch (at.kind) {
    case 'latest': {
      const newest = usable[usable.length - 1];
      if (!newest) throw new BackupNotFound(`source '${source}' has no ${method.summary} backups to restore (see: tidemark list ${source})`);
      return newest;
    }
    case 'backup': {
      const found = catalog.backups.find((m) => m.id === at.id);
      if (!found) {
        const problem = catalog.problems.find((p) => p.id === at.id);
        if (problem) throw new IntegrityError(problem.reason);
        if (catalog.incomplete.includes(at.id)) throw new BackupNotFound(`backup ${at.id} of source '${source}' never finished; it cannot be restored`);
        throw new BackupNotFound(`source '${source}' has no backup ${at.id} (see: tidemark list ${source})`);
      }
      if (!method.accepts(found)) {
        throw new UsageError(`backup ${at.id} is a ${found.type} backup (${found.details.kind}); this restore takes ${method.summary} backups`);
      }
      return found;
    }
    case 'time': {
      assertTimeInWindow(at.at, restorableWindow(usable), source);
      // The shared resolver (restore-path.ts): without an archive it reaches only backups' own points.
      const resolved = resolveTime(usable, [], at.at);
      if (resolved) return resolved.chain[resolved.chain.length - 1];
      const before = usable.filter((m) => m.restorePoint.time <= at.at).pop()!;
      throw new UsageError(
        `--time ${at.at}: source '${source}' has no continuous archive, so it restores only to its backups' points; the newest before that time is backup ${before.id} (${before.restorePoint.time}): use --backup ${before.id}`,
      );
    }
    default:
      throw new UsageError(
        `${describeRecoveryTarget(at)} needs continuous archiving (WAL or binlog), which source '${source}' does not have in this version; use --backup ID, --time of a backup, or --latest`,
      );
  }
}
