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
  level: z.number().int().min(1).max(19).default(3).describe('zstd level, 1-19'),
  threads: z.number().int().min(0).max(64).default(0).describe('zstd worker threads; 0 = one per core'),
});

export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const PostgresSource = z.strictObject({
  engine: z.literal('postgres').describe('postgres, or mysql for MySQL and MariaDB'),
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^/]+/, { message: 'expected postgres://user@host:port/database' })
    .describe('postgres://user@host:port/database; keep the password out of it'),
  password: SecretRef.optional(),
});

const MysqlSource = z.strictObject({
  engine: z.literal('mysql').describe('postgres, or mysql for MySQL and MariaDB'),
  url: z
    .string()
    .regex(/^(mysql|mariadb):\/\/[^/]+/, { message: 'expected mysql://user@host:port[/database]' })
    .describe('mysql://user@host:port[/database]; keep the password out of it'),
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
    .refine((s) => Object.keys(s).length > 0, { message: 'at least one source is required' })
    .describe('The databases to back up, by name (the name commands take)'),
});

export type TidemarkConfig = z.output<typeof TidemarkConfigSchema>;
export type TidemarkConfigInput = z.input<typeof TidemarkConfigSchema>;
export type SourceConfig = z.output<typeof SourceConfig>;
export type RepositoryConfig = z.output<typeof RepositoryConfig>;
export type Engine = SourceConfig['engine'];
