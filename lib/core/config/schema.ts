import { z } from 'zod';

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
    message: 'expected env:NAME, file:/path or secret:<Secrets Manager ARN>',
  });

/** Encryption key reference: a local secret (env:/file:) or a KMS key (kms:<arn or alias>). */
export const KeyRef = z.string().regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|kms:.+)$/, {
  message: 'expected env:NAME, file:/path or kms:<key ARN or alias>',
});

const repositoryUrl = z.string().regex(/^(file|s3):\/\//, {
  message: 'expected a file:// or s3:// URL',
});

export const RepositoryConfig = z.union([
  repositoryUrl,
  z.strictObject({
    url: repositoryUrl,
    /** S3-compatible endpoint (MinIO, s3rver, ...). */
    endpoint: z.url().optional(),
    region: z.string().min(1).optional(),
    /** Path-style addressing; defaults to true when an endpoint is set. */
    forcePathStyle: z.boolean().optional(),
  }),
]);

export const CompressionConfig = z.strictObject({
  /** zstd level; 1–3 keeps up with a fast dump on two cores, higher trades CPU for storage. */
  level: z.number().int().min(1).max(19).default(3),
  /** zstd worker threads; 0 = one per core. */
  threads: z.number().int().min(0).max(64).default(0),
});

export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const PostgresSource = z.strictObject({
  engine: z.literal('postgres'),
  url: z.string().regex(/^postgres(ql)?:\/\/[^/]+/, {
    message: 'expected postgres://user@host:port/database',
  }),
  password: SecretRef.optional(),
});

const MysqlSource = z.strictObject({
  engine: z.literal('mysql'),
  url: z.string().regex(/^(mysql|mariadb):\/\/[^/]+/, {
    message: 'expected mysql://user@host:port[/database]',
  }),
  password: SecretRef.optional(),
});

export const SourceConfig = z.discriminatedUnion('engine', [PostgresSource, MysqlSource]);

export const TidemarkConfigSchema = z.strictObject({
  repository: RepositoryConfig,
  encryption: z.strictObject({ key: KeyRef }),
  compression: CompressionConfig.default({ level: 3, threads: 0 }),
  sources: z
    .record(
      z.string().regex(SOURCE_NAME, {
        message: 'source names use letters, digits, ".", "_" and "-" (at most 63)',
      }),
      SourceConfig,
    )
    .refine((s) => Object.keys(s).length > 0, { message: 'at least one source is required' }),
});

export type TidemarkConfig = z.output<typeof TidemarkConfigSchema>;
export type TidemarkConfigInput = z.input<typeof TidemarkConfigSchema>;
export type SourceConfig = z.output<typeof SourceConfig>;
export type RepositoryConfig = z.output<typeof RepositoryConfig>;
export type Engine = SourceConfig['engine'];
