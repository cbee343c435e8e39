import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors';

const EXAMPLE_REPOSITORY = 'file:///var/backups/tidemark';

/**
 * What `tidemark init` writes, except that the repository becomes an absolute file:/// URL there:
 * the store refuses relative folders, whose meaning would depend on who runs tidemark from where.
 */
export const EXAMPLE_CONFIG_YAML = `# Tidemark config. Editors can check it against docs/tidemark.config.schema.json from Tidemark.

# Where backups go: a local folder (file:///absolute/path) or a bucket (s3://bucket/prefix).
repository: ${EXAMPLE_REPOSITORY}
# The S3 form, with the optional settings for S3-compatible stores:
# repository:
#   url: s3://my-backups/tidemark       # bucket and key prefix
#   region: eu-west-1                   # defaults to the AWS SDK's region
#   endpoint: http://127.0.0.1:9000     # only for MinIO, s3rver and other S3-compatible stores
#   forcePathStyle: true                # path-style addressing; the default when endpoint is set

encryption:
  # Secret that protects every backup: env:NAME or file:/path (at least 32 characters),
  # or kms:<key ARN or alias> on AWS. Without it the backups cannot be restored: keep a copy.
  key: env:TIDEMARK_KEY

# Optional zstd settings:
# compression:
#   level: 1                            # 1-19; higher is smaller and slower (BENCHMARKS.md)
#   threads: 0                          # 0 = one per CPU core

# What retention keeps (tidemark retention --all plans it; --apply deletes the rest). These are the
# defaults; a source can override any key under sources.<name>.retention.
# retention:
#   full: 4                             # physical full backups (RDS snapshots count as fulls)
#   diff: 4                             # differential backups; the fulls they build on are kept too
#   logical: 30                         # logical backups (pg_dump, mysqldump)
#   archiveDays: 30                     # point-in-time window: WAL/binlog and the backup before it
#   minFull: 1                          # fulls never to go below, whatever else says
#   longTerm: { daily: 0, weekly: 0, monthly: 12, yearly: 0 }   # newest full or logical per period
#
# Storage tiers of long-term keeps (S3 only; never the newest chain or one the window needs):
# tiers:
#   warmAfterDays: 30                   # STANDARD_IA (tag tidemark:tier=warm); at least 30
#   coldAfterDays: 90                   # the cold class (tag tidemark:tier=cold); at least warm + 30
#   coldClass: GLACIER                  # or DEEP_ARCHIVE; default: aws.coldStorageClass, else GLACIER

# The databases to back up; the name (here "app") is what commands take: tidemark backup app
sources:
  app:
    engine: postgres                    # postgres, or mysql for MySQL and MariaDB
    url: postgres://backup@127.0.0.1:5432/app   # user@host:port/database; keep the password out of it
    password: env:APP_DB_PASSWORD       # or file:/path, or secret:<Secrets Manager ARN or name>
    # retention: { logical: 7, longTerm: { monthly: 24 } }   # this source's own keys
  # shop:
  #   engine: mysql
  #   url: mysql://backup@127.0.0.1:3306/shop
  #   password: env:SHOP_DB_PASSWORD
`;

/** Writes the example config, its repository in ./tidemark-repo beside it; an existing file is kept unless `force`. */
export async function writeExampleConfig(path: string, { force = false }: { force?: boolean } = {}): Promise<void> {
  const repository = pathToFileURL(resolve(dirname(path), 'tidemark-repo')).href;
  const text = EXAMPLE_CONFIG_YAML.replace(`repository: ${EXAMPLE_REPOSITORY}`, `repository: ${repository}`);
  try {
    // 'wx' makes the existence check and the write one step, so a racing writer cannot be clobbered.
    await writeFile(path, text, { flag: force ? 'w' : 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ConfigError(`${path} already exists (use --force to overwrite it)`, { cause: err });
    throw new ConfigError(`cannot write ${path}: ${code ?? String(err)}`, { cause: err });
  }
}
