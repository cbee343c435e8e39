import type { MethodRegistration } from '../registration';
import { MysqlLogicalDetailsSchema } from './logical-details';

/** mariadb-dump/mysqldump of one database; restores into any MySQL/MariaDB database of another name too. */
export const mysqlLogical = {
  id: 'mysql-logical',
  summary: 'logical (mysqldump)',
  types: ['logical'],
  restoresInto: ['database'],
  accepts: (config) => config.engine === 'mysql',
  defaultSchedule: { logical: '0 3 * * *' },
  details: MysqlLogicalDetailsSchema,
  load: async () => (await import('./logical-method')).mysqlLogicalMethod,
} satisfies MethodRegistration<'mysql-logical'>;
