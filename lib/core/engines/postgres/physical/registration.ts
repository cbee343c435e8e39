import type { MethodRegistration } from '../../registration';
import { checksumWarnings, PgPhysicalDetailsSchema, type PgPhysicalDetails } from './details';

/**
 * pg_basebackup over a replication connection, split into blocks: full, differential (blocks that
 * changed since the newest full) and incremental (since the newest physical backup). Restores into
 * an empty data directory. Self-managed servers only: RDS gives no replication role.
 */
export const pgPhysical = {
  id: 'pg-physical',
  summary: 'physical (pg_basebackup, block incremental)',
  types: ['full', 'diff', 'incr'],
  restoresInto: ['data-dir'],
  accepts: (config) => config.engine === 'postgres' && !config.rds,
  defaultSchedule: { full: '0 1 * * 0', incr: '0 1 * * 1-6' },
  details: PgPhysicalDetailsSchema,
  warnings: (details) => (details.kind === 'pg-physical' ? checksumWarnings(details as PgPhysicalDetails) : []),
  load: async () => (await import('./method')).pgPhysicalMethod,
} satisfies MethodRegistration<'pg-physical'>;
