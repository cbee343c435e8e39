import { existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ToolFailed } from '../../errors';

/**
 * MariaDB renamed its tools (mysqldump → mariadb-dump, ...) and keeps the old names as links for
 * now; MySQL has only the old ones. The MariaDB name is tried first because it is the one that stays.
 */
const CANDIDATES = {
  dump: ['mariadb-dump', 'mysqldump'],
  client: ['mariadb', 'mysql'],
  binlog: ['mariadb-binlog', 'mysqlbinlog'],
  server: ['mariadbd', 'mysqld'],
  installDb: ['mariadb-install-db', 'mysql_install_db'],
  admin: ['mariadb-admin', 'mysqladmin'],
  backup: ['mariadb-backup', 'mariabackup'],
} as const;

export type MysqlTool = keyof typeof CANDIDATES;

// Servers live in sbin, which a non-root PATH usually lacks.
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin'];

const cache = new Map<string, string>();

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

/**
 * Absolute path of a MariaDB/MySQL tool, searched on PATH plus the sbin directories.
 * @param extraDirs searched after PATH @default - /usr/sbin and /usr/local/sbin
 */
export function mysqlBin(name: MysqlTool, extraDirs: readonly string[] = EXTRA_DIRS): string {
  const searchPath = process.env.PATH ?? '';
  const key = `${name}\0${searchPath}\0${extraDirs.join(delimiter)}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dirs = [...searchPath.split(delimiter).filter(Boolean), ...extraDirs];
  for (const program of CANDIDATES[name]) {
    const found = dirs.map((dir) => join(dir, program)).find(isFile);
    if (found) {
      cache.set(key, found);
      return found;
    }
  }
  throw new ToolFailed(`${CANDIDATES[name].join(' or ')} not found on PATH or in /usr/sbin; run scripts/setup.sh`);
}
