import type { BackupManifest, RestorePoint } from '../repository/manifest';
import type { RestorableWindow } from './recovery-target';

/**
 * The restorable window, computed in one place for list, restore, rpo-check and drills: from the
 * oldest backup's point to the newest point reachable — the newest backup's, or further when a
 * continuous archive continues unbroken from a backup (`archiveEnd`, from ContinuousArchive).
 */
export function restorableWindow(backups: readonly BackupManifest[], archiveEnd?: RestorePoint): RestorableWindow | null {
  if (backups.length === 0) return null;
  const times = backups.map((b) => b.restorePoint.time).sort();
  const newest = times[times.length - 1];
  return { from: times[0], to: archiveEnd && archiveEnd.time > newest ? archiveEnd.time : newest };
}
