/**
 * The backup types, declared once: the CLI's choices, the config's schedule keys, the manifest
 * schema, the worker's arguments and the metrics all derive from this list.
 */
export const BACKUP_TYPES = ['full', 'diff', 'incr', 'logical'] as const;

export type BackupType = (typeof BACKUP_TYPES)[number];

export function isBackupType(value: string): value is BackupType {
  return (BACKUP_TYPES as readonly string[]).includes(value);
}
