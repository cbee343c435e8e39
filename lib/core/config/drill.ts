import { z } from 'zod';

/**
 * Restore drills per source (`sources.<name>.drill`): when they run and what they check beyond
 * the built-in checks (recorded checksums, the engine's own verifier, the restored point).
 * Defaults follow the seed: a daily verify, a weekly restore test of the newest point, a monthly
 * full drill at a random point of the window.
 */

/** Five-field cron, checked by the caller's schema (schema.ts passes its Cron type in). */
export const DRILL_SCHEDULE_DEFAULTS = {
  verify: '0 5 * * *',
  restore: '0 6 * * 0',
  full: '0 7 1 * *',
} as const;

export const DrillAssertion = z
  .strictObject({
    name: z.string().min(1).max(120).describe('Shown in the drill report'),
    sql: z.string().min(1).describe('A query run on the restored database; its first column of its first row is compared'),
    expect: z.union([z.string(), z.number(), z.boolean(), z.null()]).describe('Expected value of that cell (compared as text)'),
  })
  .describe('An SQL assertion every drill of this source runs on the restored data');

export const DRILL_POINTS = ['latest', 'random'] as const;
export type DrillPoint = (typeof DRILL_POINTS)[number] | { at: string };

export function drillConfigSchema<C extends z.ZodType<string>>(cron: C) {
  return z
    .strictObject({
      assertions: z.array(DrillAssertion).max(100).default([]),
      schedule: z
        .strictObject({
          verify: cron.optional().describe(`Verify every stored object (default "${DRILL_SCHEDULE_DEFAULTS.verify}")`),
          restore: cron.optional().describe(`Restore the newest point and check it (default "${DRILL_SCHEDULE_DEFAULTS.restore}")`),
          full: cron.optional().describe(`Restore a random point of the window and run every check (default "${DRILL_SCHEDULE_DEFAULTS.full}")`),
        })
        .optional()
        .describe('When drills run (five-field cron each); omitted keys take the defaults'),
      tableChecksums: z
        .union([
          z.literal(false),
          z.strictObject({
            exactMiB: z.number().int().min(1).max(1048576).optional().describe('Tables up to this size are hashed whole; larger ones on a primary-key sample (PostgreSQL, one integer key: about sampleMiB of key ranges; otherwise about this size) (default 256)'),
            sampleMiB: z
              .number()
              .int()
              .min(1)
              .max(1048576)
              .optional()
              .describe('PostgreSQL: a larger table with one integer key is counted and hashed on key ranges read through its index, together about this size (default 32)'),
          }),
        ])
        .optional()
        .describe('Per-table row counts and checksums recorded by logical backups in their own snapshot, compared by drills; false turns them off'),
      restoreSizeGiB: z
        .number()
        .int()
        .min(1)
        .max(16384)
        .optional()
        .describe('Disk a restore needs; above the Fargate task\'s ephemeral storage the drill task gets an ECS-managed EBS volume of this size'),
    })
    .describe('Restore drills: schedules and SQL assertions');
}
