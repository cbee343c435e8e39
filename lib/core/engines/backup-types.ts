/**
 * The backup types, declared once: the CLI's choices, the config's schedule keys, the manifest
 * schema, the worker's arguments and the metrics all derive from this list.
 */
export const BACKUP_TYPES = ['full', 'diff', 'incr', 'logical'] as const;

export type BackupType = (typeof BACKUP_TYPES)[number];

/** What each type is, in the words `--help` and error messages use. */
export const BACKUP_TYPE_MEANING: Readonly<Record<BackupType, string>> = {
  full: 'a physical copy of the whole cluster (or an RDS snapshot)',
  diff: 'the blocks changed since the last full backup',
  incr: 'the blocks changed since the last backup of any type',
  logical: 'a dump of one database (pg_dump, mariadb-dump)',
};

export function isBackupType(value: string): value is BackupType {
  return (BACKUP_TYPES as readonly string[]).includes(value);
}
