import type { PgLogicalDetails } from '../../lib/core/engines/postgres/logical-details';

/** Valid details for a hand-made pg-logical manifest (tests that write backups without a database). */
export const TEST_PG_LOGICAL_DETAILS: PgLogicalDetails = {
  kind: 'pg-logical',
  database: 'app',
  format: 'pg_dump-custom',
  serverVersion: '15.0',
  serverMajor: 15,
  pgDumpMajor: 15,
  encoding: 'UTF8',
  collate: 'C.UTF-8',
  ctype: 'C.UTF-8',
};
