import { z } from 'zod';
import { TableChecksumsSchema } from '../../drill/checksums';

// Encoding and locale names reach CREATE DATABASE on restore: only the characters real names use.
const ENCODING = /^[A-Za-z0-9_]{1,63}$/;
const LOCALE = /^[A-Za-z0-9_.@-]{0,63}$/;

/** What a PostgreSQL logical backup's manifest records besides its objects (`dump`, `globals.sql`). */
export const PgLogicalDetailsSchema = z.object({
  kind: z.literal('pg-logical'),
  database: z.string().min(1),
  format: z.literal('pg_dump-custom'),
  serverVersion: z.string(),
  serverMajor: z.number().int().positive(),
  pgDumpMajor: z.number().int().positive(),
  encoding: z.string().regex(ENCODING, { message: 'not an encoding name' }),
  collate: z.string().regex(LOCALE, { message: 'not a locale name' }),
  ctype: z.string().regex(LOCALE, { message: 'not a locale name' }),
  /** Row counts and checksums in the dump's snapshot, for drills (absent in older backups). */
  tableChecksums: TableChecksumsSchema.optional(),
  /** Why they are missing, when computing them failed (the backup itself did not). */
  tableChecksumsError: z.string().optional(),
});

export type PgLogicalDetails = z.infer<typeof PgLogicalDetailsSchema>;
