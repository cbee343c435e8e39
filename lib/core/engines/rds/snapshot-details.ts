import { z } from 'zod';

/** What the manifest of an RDS snapshot backup holds: it has no objects, the snapshot is the data. */
export const RdsSnapshotDetailsSchema = z.object({
  kind: z.literal('rds-snapshot'),
  snapshotArn: z.string().startsWith('arn:'),
  snapshotIdentifier: z.string().min(1),
  region: z.string().min(1),
  instance: z.string().optional(),
  cluster: z.string().optional(),
  rdsEngine: z.string().optional(),
  engineVersion: z.string().optional(),
  encrypted: z.boolean(),
  kmsKeyId: z.string().optional(),
  allocatedStorageGiB: z.number().optional(),
  copy: z
    .object({ region: z.string(), snapshotArn: z.string(), kmsKeyId: z.string().optional(), encrypted: z.boolean() })
    .optional(),
});

export type RdsSnapshotDetails = z.infer<typeof RdsSnapshotDetailsSchema>;
