import { z } from 'zod';
import { TableChecksumsSchema } from '../../drill/checksums';

// Character set and collation names reach CREATE DATABASE on restore: only what real names use.
const NAME = /^[A-Za-z0-9_]{1,64}$/;

/** What a MySQL/MariaDB logical backup's manifest records besides its object (`dump`). */
export const MysqlLogicalDetailsSchema = z.object({
  kind: z.literal('mysql-logical'),
  database: z.string().min(1),
  format: z.literal('mysqldump-sql'),
  flavor: z.enum(['mariadb', 'mysql']),
  serverVersion: z.string(),
  dumpTool: z.string(),
  dumpToolVersion: z.string(),
  charset: z.string().regex(NAME, { message: 'not a character set name' }),
  collation: z.string().regex(NAME, { message: 'not a collation name' }),
  /** Binlog position of the dump's snapshot; absent when the source has no binary log. */
  binlog: z.object({ file: z.string(), position: z.number().int().nonnegative(), gtid: z.string().optional() }).optional(),
  /** Tables a single transaction cannot make consistent (MyISAM, Aria, MEMORY, …). */
  nonTransactionalTables: z.array(z.object({ table: z.string(), engine: z.string() })),
  /** Row counts and checksums for drills, with the binlog position of their own snapshot (absent in older backups). */
  tableChecksums: TableChecksumsSchema.optional(),
  /** Why they are missing, when computing them failed (the backup itself did not). */
  tableChecksumsError: z.string().optional(),
});

export type MysqlLogicalDetails = z.infer<typeof MysqlLogicalDetailsSchema>;
