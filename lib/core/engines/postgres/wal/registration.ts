import type { ArchiveRegistration } from '../../continuous-archive';

/**
 * Continuous WAL of a self-managed PostgreSQL server (pg_receivewal with a slot, or wal-push as
 * archive_command). RDS has no replication role for us: its PITR is RDS's own.
 */
export const pgWal = {
  id: 'pg-wal',
  summary: 'continuous WAL (pg_receivewal or archive_command)',
  stream: 'wal',
  accepts: (config) => config.engine === 'postgres' && !config.rds,
  replaysOnto: ['pg-physical'],
  load: async () => (await import('./wal-method')).pgWalArchive,
} satisfies ArchiveRegistration;
