import type { MethodRegistration } from '../registration';
import { PgLogicalDetailsSchema } from './logical-details';

/** pg_dump of one database plus its roles; restores into any PostgreSQL server of the same or newer major. */
export const pgLogical = {
  id: 'pg-logical',
  summary: 'logical (pg_dump)',
  types: ['logical'],
  restoresInto: ['database'],
  accepts: (config) => config.engine === 'postgres',
  defaultSchedule: { logical: '0 3 * * *' },
  details: PgLogicalDetailsSchema,
  load: async () => (await import('./logical-method')).pgLogicalMethod,
} satisfies MethodRegistration<'pg-logical'>;
