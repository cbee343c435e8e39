import { z } from 'zod';
import { BACKUP_TYPES, type BackupType } from '../engines/backup-types';
import { availableTypes } from '../engines/registry';
import { toEventBridgeCron } from './cron';
import { DURATION, formatDuration, parseDuration } from './duration';
import { drillConfigSchema } from './drill';
import {
  checkPolicy,
  mergePolicy,
  RETENTION_DEFAULTS,
  RetentionConfig,
  SourceRetentionConfig,
  SourceTiersConfig,
  TIERS_DEFAULTS,
  TiersConfig,
} from './retention';

/**
 * The config contract (DESIGN.md §5). The minimal keys — repository, encryption.key, sources.<name>
 * .{engine,url,password} — keep their meaning forever; everything else is optional with defaults.
 * Objects are strict: an unknown key is an error naming it, because a misspelt `retention` that is
 * silently ignored is how backups disappear.
 */

/** `env:NAME`, `file:/path` or `secret:<Secrets Manager ARN or name>`. */
export const SecretRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|secret:.+)$/, {
    message: 'expected env:NAME, file:/path or secret:<Secrets Manager ARN or name>',
  })
  .describe('Secret reference: env:NAME, file:/path or secret:<Secrets Manager ARN or name>');

/** Encryption key reference: a local secret (env:/file:) or a KMS key (kms:<arn or alias>). */
export const KeyRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|kms:.+)$/, {
    message: 'expected env:NAME, file:/path or kms:<key ARN or alias>',
  })
  .describe('Encryption key: env:NAME or file:/path (a secret of at least 32 characters), or kms:<key ARN or alias>');

const repositoryUrl = z.string().regex(/^(file|s3):\/\//, {
  message: 'expected a file:// or s3:// URL',
});

export const RepositoryConfig = z.union(
  [
    repositoryUrl,
    z.strictObject({
      url: repositoryUrl,
      endpoint: z.url().optional().describe('S3-compatible endpoint URL (MinIO, s3rver, ...)'),
      region: z.string().min(1).optional().describe('AWS region of the bucket'),
      forcePathStyle: z.boolean().optional().describe('Path-style addressing; defaults to true with an endpoint'),
    }),
  ],
  // Shown when the value is neither a string nor a mapping; otherwise the matching branch explains.
  { error: 'expected a file:// or s3:// URL, or a mapping with url (and endpoint, region, forcePathStyle)' },
).describe('Where backups are stored: file://<folder> or s3://<bucket>/<prefix>');

export const CompressionConfig = z.strictObject({
  /** zstd level; 1–3 keeps up with a fast dump on two cores, higher trades CPU for storage. */
  level: z.number().int().min(1).max(19).default(1).describe('zstd level, 1-19'),
  threads: z.number().int().min(0).max(64).default(0).describe('zstd worker threads; 0 = one per core'),
});

export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Five-field cron ("0 3 * * 0"), validated here so a bad schedule fails before anything is deployed. */
const Cron = z
  .string()
  .superRefine((value, ctx) => {
    try {
      toEventBridgeCron(value);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `not a valid cron schedule (${(e as Error).message})` });
    }
  })
  .describe('Five-field cron: minute hour day-of-month month day-of-week, e.g. "0 3 * * 0" (Sundays 03:00)');

const Duration = z.string().regex(DURATION, { message: 'expected a duration like 90s, 5m, 1h or 7d' });

const TimeZone = z
  .string()
  .refine((tz) => Intl.supportedValuesOf('timeZone').includes(tz) || tz === 'UTC', { message: 'expected an IANA time zone such as Europe/Berlin' });

export const ScheduleConfig = z
  .strictObject({
    ...(Object.fromEntries(BACKUP_TYPES.map((t) => [t, Cron.optional()])) as Record<BackupType, z.ZodOptional<typeof Cron>>),
    timeZone: TimeZone.optional().describe('IANA time zone of these crons; defaults to aws.timeZone'),
  })
  .describe(`When each backup type runs (five-field cron per type: ${BACKUP_TYPES.join(', ')}); the default is the first backup method's schedule: a nightly logical dump, or a nightly snapshot for RDS`);

export const StreamConfig = z
  .strictObject({
    flushSeconds: z.number().int().min(1).max(3600).default(10).describe('Longest a WAL/binlog change waits before it is stored'),
  })
  .describe('Continuous WAL/binlog streaming for point-in-time recovery (a Fargate service on AWS)');

export const RdsConfig = z
  .strictObject({
    instance: z.string().min(1).optional().describe('RDS DB instance identifier'),
    cluster: z.string().min(1).optional().describe('Aurora DB cluster identifier'),
    copyToRegion: z.string().min(1).optional().describe('Copy every snapshot to this region'),
    copyKmsKeyArn: z.string().startsWith('arn:').optional().describe('KMS key in copyToRegion for the copies'),
  })
  .refine((r) => (r.instance === undefined) !== (r.cluster === undefined), { message: 'set exactly one of instance or cluster' })
  .refine((r) => !r.copyToRegion || r.copyKmsKeyArn, { message: 'copyToRegion needs copyKmsKeyArn (a key in that region)' })
  .describe('An RDS/Aurora source: full backups are RDS snapshots');

const Placement = z
  .strictObject({
    account: z.string().regex(/^\d{12}$/, { message: 'expected a 12-digit AWS account id' }).optional(),
    region: z.string().regex(/^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$/, { message: 'expected an AWS region such as eu-west-1' }).optional(),
  })
  .describe('Account and region whose stack backs this source up; defaults to aws.account/aws.region');

/** Every consumer (the CLI, the worker, the stack's security-group rules) parses the URL: check it once here. */
function parsesAsUrl(url: string): boolean {
  try {
    const u = new URL(url);
    for (const part of [u.hostname, u.username, u.password, u.pathname]) decodeURIComponent(part);
    return true;
  } catch {
    return false;
  }
}
const URL_PROBLEM = 'not a valid URL (check the host, the port and any %-escapes)';

const sourceOptions = {
  password: SecretRef.optional(),
  schedule: ScheduleConfig.optional(),
  stream: StreamConfig.optional(),
  rpo: Duration.optional().describe('Recovery point objective: alarm when the newest restorable point is older'),
  rto: Duration.optional().describe('Recovery time objective: drills fail when a restore takes longer'),
  rds: RdsConfig.optional(),
  securityGroupId: z.string().regex(/^sg-[0-9a-f]+$/, { message: 'expected a security group id (sg-...)' }).optional()
    .describe("The database's security group; workers get an ingress rule on the database port"),
  aws: Placement.optional(),
  retention: SourceRetentionConfig.optional(),
  tiers: SourceTiersConfig.optional(),
  drill: drillConfigSchema(Cron).optional(),
};

const PostgresSource = z.strictObject({
  engine: z.literal('postgres').describe('postgres, or mysql for MySQL and MariaDB'),
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^/]+/, { message: 'expected postgres://user@host:port/database', abort: true })
    .refine(parsesAsUrl, { message: URL_PROBLEM })
    .describe('postgres://user@host:port/database; keep the password out of it'),
  ...sourceOptions,
});

const MysqlSource = z.strictObject({
  engine: z.literal('mysql').describe('postgres, or mysql for MySQL and MariaDB'),
  url: z
    .string()
    .regex(/^(mysql|mariadb):\/\/[^/]+/, { message: 'expected mysql://user@host:port[/database]', abort: true })
    .refine(parsesAsUrl, { message: URL_PROBLEM })
    .describe('mysql://user@host:port[/database]; keep the password out of it'),
  ...sourceOptions,
  mysql: z
    .strictObject({
      refuseNonTransactional: z
        .boolean()
        .default(false)
        .describe('Fail logical backups while the database holds tables a transaction cannot snapshot (MyISAM, Aria, MEMORY); otherwise they are only named in a warning'),
    })
    .optional()
    .describe('Settings for MySQL and MariaDB sources'),
});

export const SourceConfig = z
  .discriminatedUnion('engine', [PostgresSource, MysqlSource])
  .superRefine((source, ctx) => {
    // A streamed change waits up to flushSeconds before it is stored: an RPO below that always fires.
    if (source.rpo && source.stream && parseDuration(source.rpo) < source.stream.flushSeconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['rpo'],
        message: `RPO ${source.rpo} is shorter than stream.flushSeconds (${formatDuration(source.stream.flushSeconds)}): it could never be met`,
      });
    }
  });

const WorkerConfig = z.strictObject({
  cpu: z.union([z.literal(256), z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)]).default(1024),
  memoryMiB: z.number().int().min(512).max(30720).default(2048),
  ephemeralStorageGiB: z.number().int().min(21).max(200).default(21).describe('The worker streams: it needs little disk'),
  timeout: Duration.default('6h').describe('Longest a single backup task may run'),
});

export const AwsConfig = z
  .strictObject({
    account: Placement.shape.account.unwrap(),
    region: Placement.shape.region.unwrap(),
    replicaRegion: Placement.shape.region.optional().describe('Replicate the vault to a bucket in this region (3-2-1)'),
    vpc: z
      .union([
        z.strictObject({
          id: z.string().regex(/^vpc-[0-9a-f]+$/, { message: 'expected a VPC id (vpc-...)' }),
          subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/, { message: 'expected a subnet id (subnet-...)' })).min(1)
            .describe('Private subnets (with a route to S3 and the databases) the workers run in'),
          availabilityZones: z.array(z.string().min(1)).min(1).describe('The zones of subnetIds, in the same order'),
        }).refine((v) => v.subnetIds.length === v.availabilityZones.length, { message: 'subnetIds and availabilityZones must have the same length' }),
        z.strictObject({ cidr: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/), maxAzs: z.number().int().min(1).max(6).default(2) }),
      ])
      .default({ cidr: '10.90.0.0/16', maxAzs: 2 })
      .describe('An existing VPC (id) or a new one (cidr)'),
    objectLock: z
      .strictObject({ mode: z.enum(['governance', 'compliance']), days: z.number().int().min(1).max(36500) })
      .default({ mode: 'governance', days: 14 })
      .describe('Default S3 Object Lock retention of every stored object'),
    coldStorageClass: z.enum(['GLACIER', 'DEEP_ARCHIVE']).default('GLACIER').describe('Where objects tagged tidemark:tier=cold go'),
    maxConcurrency: z.number().int().min(1).max(40).default(4).describe('Backups running at once'),
    worker: WorkerConfig.default({ cpu: 1024, memoryMiB: 2048, ephemeralStorageGiB: 21, timeout: '6h' }),
    timeZone: TimeZone.default('UTC').describe('Time zone of the schedules'),
    alarmEmail: z.email().optional().describe('Subscribe this address to the alarm topic'),
    maintenance: z
      .strictObject({
        retention: Cron.default('15 4 * * *').describe('When the retention function applies every source\'s policy (default daily 04:15)'),
        tiering: Cron.default('15 5 * * *').describe('When the tiering function tags whole chains for the colder tiers (default daily 05:15)'),
      })
      .default({ retention: '15 4 * * *', tiering: '15 5 * * *' })
      .describe('When retention and tiering run (five-field cron each, in aws.timeZone)'),
  })
  .describe('The AWS deployment (cdk deploy); not needed locally');

export const TidemarkConfigSchema = z.strictObject({
  repository: RepositoryConfig,
  encryption: z.strictObject({
    key: KeyRef,
    previousKeys: z
      .array(KeyRef)
      .optional()
      .describe('Keys encryption.key replaced: they only unwrap the data keys of backups and archives made before the rotation; keep each as long as those are kept'),
  }),
  compression: CompressionConfig.default({ level: 1, threads: 0 }),
  retention: RetentionConfig.default(RETENTION_DEFAULTS).describe('Every source\'s retention unless it sets its own keys (sources.<name>.retention)'),
  tiers: TiersConfig.default(TIERS_DEFAULTS).describe('Every source\'s tiers unless it sets its own keys (sources.<name>.tiers)'),
  aws: AwsConfig.optional(),
  sources: z
    .record(
      z.string().regex(SOURCE_NAME, {
        message: 'source names use letters, digits, ".", "_" and "-" (at most 63)',
      }),
      SourceConfig,
    )
    .refine((s) => Object.keys(s).length > 0, { message: 'at least one source is required' })
    .describe('The databases to back up, by name (the name commands take)'),
}).superRefine((config, ctx) => {
  // Each source's policy (the top level merged with its own keys) is checked as a whole; a problem
  // is reported at the key the source set, or else at the top-level key it inherited.
  for (const [name, source] of Object.entries(config.sources)) {
    const policy = mergePolicy(config, source);
    const types = source.schedule ? BACKUP_TYPES.filter((t) => source.schedule?.[t] !== undefined) : availableTypes(source);
    for (const problem of checkPolicy(policy, { types, rds: source.rds !== undefined, vaultColdClass: config.aws?.coldStorageClass })) {
      const [section, ...rest] = problem.path as [string, ...(string | number)[]];
      const own = rest.reduce<unknown>((v, k) => (v as Record<string | number, unknown> | undefined)?.[k], (source as Record<string, unknown>)[section]);
      ctx.addIssue({ code: 'custom', path: own !== undefined ? ['sources', name, ...problem.path] : [...problem.path], message: problem.message });
    }
  }
});

export type TidemarkConfig = z.output<typeof TidemarkConfigSchema>;
export type TidemarkConfigInput = z.input<typeof TidemarkConfigSchema>;
export type SourceConfig = z.output<typeof SourceConfig>;
export type RepositoryConfig = z.output<typeof RepositoryConfig>;
export type Engine = SourceConfig['engine'];
export type AwsConfig = z.output<typeof AwsConfig>;
export type ScheduleConfig = z.output<typeof ScheduleConfig>;
export type { RetentionPolicy, SourcePolicy, TiersPolicy } from './retention';
