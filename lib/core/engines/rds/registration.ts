import type { MethodRegistration } from '../registration';
import { RdsSnapshotDetailsSchema } from './snapshot-details';

/** Full backups of RDS/Aurora sources are RDS snapshots; they restore into a new instance (drills). */
export const rdsSnapshot = {
  id: 'rds-snapshot',
  summary: 'full (an RDS snapshot)',
  types: ['full'],
  restoresInto: [],
  accepts: (config) => config.rds !== undefined,
  defaultSchedule: { full: '0 3 * * *' },
  details: RdsSnapshotDetailsSchema,
  load: async () => (await import('./snapshot-method')).rdsSnapshotMethod,
} satisfies MethodRegistration<'rds-snapshot'>;
