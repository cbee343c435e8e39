import type { ArchiveRegistration } from '../../continuous-archive';

/**
 * Continuous binlog of a MySQL/MariaDB server (self-managed or RDS: a replication client reading
 * the binlog over the network). Replayed onto logical dumps that recorded their binlog coordinates.
 */
export const mysqlBinlog = {
  id: 'mysql-binlog',
  summary: 'continuous binlog (mariadb-binlog --read-from-remote-server)',
  stream: 'binlog',
  accepts: (config) => config.engine === 'mysql',
  replaysOnto: ['mysql-logical'],
  load: async () => (await import('./binlog-method')).mysqlBinlogArchive,
} satisfies ArchiveRegistration;
