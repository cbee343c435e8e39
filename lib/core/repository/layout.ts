/**
 * Where things live in a repository (DESIGN.md §3). Keys are relative to the repository root
 * (the folder of a file:// URL, the bucket prefix of an s3:// URL).
 *
 *   tidemark.json                              repository marker: format version, key check
 *   <source>/backups/<backupId>/<object>       a backup's objects (dump, globals.sql, ...)
 *   <source>/backups/<backupId>/manifest.json  written last: its presence commits the backup
 *   <source>/wal/<timeline>/<segment>          continuous WAL (PostgreSQL)
 *   <source>/binlog/<file>                     continuous binlog (MySQL/MariaDB)
 *   <source>/<wal|binlog>/keys/<epoch>.json    the archive's data-key epochs (archive.ts)
 */
export const REPOSITORY_MARKER_KEY = 'tidemark.json';
export const MANIFEST_NAME = 'manifest.json';

export const backupsPrefix = (source: string): string => `${source}/backups/`;
export const backupPrefix = (source: string, id: string): string => `${backupsPrefix(source)}${id}/`;
export const manifestKey = (source: string, id: string): string => `${backupPrefix(source, id)}${MANIFEST_NAME}`;
export const objectKey = (source: string, id: string, name: string): string => `${backupPrefix(source, id)}${name}`;
