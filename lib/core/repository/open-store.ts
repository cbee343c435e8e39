import { fileURLToPath } from 'node:url';
import type { RepositoryConfig } from '../config/schema';
import { ConfigError } from '../errors';
import { FileStore } from './file-store';
import { keyProblem } from './keys';
import { describeS3Location, type S3Location } from './s3-location';
import type { S3Store } from './s3-store';
import type { ObjectStore } from './storage';

/** The storage backend a repository config names: a local folder (file://) or a bucket (s3://). */
export function openStore(repository: RepositoryConfig): ObjectStore {
  const config = typeof repository === 'string' ? { url: repository } : repository;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(config.url)?.[0].toLowerCase();
  if (scheme === undefined) {
    throw new ConfigError(`repository: '${redact(config.url)}' is not a URL (expected file:// or s3://)`);
  }
  if (scheme === 'file:' && config.url.startsWith('file://')) return new FileStore(folderOf(config.url));
  if (scheme === 's3:' && config.url.startsWith('s3://')) return new DeferredS3Store(s3Location(config));
  throw new ConfigError(`repository: unknown scheme '${scheme}' (expected file:// or s3://)`);
}

function folderOf(url: string): string {
  try {
    if (url === 'file://') throw new Error('no folder');
    // Relative folders would depend on the working directory of whoever runs tidemark (CLI, worker).
    const folder = fileURLToPath(url);
    if (folder.includes('\0')) throw new Error('a NUL byte'); // %00: no file system takes it
    return folder;
  } catch {
    throw new ConfigError(`repository: '${redact(url)}' is not an absolute folder (expected file:///absolute/path)`);
  }
}

function s3Location(config: Exclude<RepositoryConfig, string>): S3Location {
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(config.url);
  const bucket = match?.[1] ?? '';
  if (bucket === '') throw new ConfigError(`repository: '${redact(config.url)}' names no bucket (expected s3://bucket/prefix)`);
  if (bucket.includes('@')) throw new ConfigError('repository: credentials do not belong in the s3:// URL; use the AWS credential chain');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new ConfigError(`repository: '${bucket}' is not a valid S3 bucket name (3–63 of a-z, 0-9, '.', '-')`);
  }
  const prefix = (match?.[2] ?? '').replace(/^\/+|\/+$/g, '');
  const problem = prefix === '' ? undefined : keyProblem(prefix);
  if (problem !== undefined) throw new ConfigError(`repository: the prefix '${prefix}' of ${config.url} is invalid: ${problem}`);
  return {
    bucket,
    prefix,
    endpoint: config.endpoint,
    region: config.region ?? process.env.AWS_REGION ?? 'us-east-1',
    // S3-compatible servers rarely have wildcard DNS for virtual-hosted bucket names.
    forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
  };
}

/** Hides user info (user:password@) so an error message never carries a secret. */
function redact(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//***@');
}

/**
 * An S3Store whose module (and the AWS SDK behind it, a few hundred milliseconds to load) is
 * loaded on first use, so commands on a folder repository never pay for it.
 */
class DeferredS3Store implements ObjectStore {
  readonly description: string;
  private opened?: Promise<S3Store>;

  constructor(private readonly location: S3Location) {
    this.description = describeS3Location(location);
  }

  private open(): Promise<S3Store> {
    this.opened ??= import('./s3-store').then(({ S3Store }) => new S3Store(this.location));
    return this.opened;
  }

  async put(...args: Parameters<ObjectStore['put']>) {
    return (await this.open()).put(...args);
  }

  async get(...args: Parameters<ObjectStore['get']>) {
    return (await this.open()).get(...args);
  }

  async getBytes(...args: Parameters<ObjectStore['getBytes']>) {
    return (await this.open()).getBytes(...args);
  }

  async head(...args: Parameters<ObjectStore['head']>) {
    return (await this.open()).head(...args);
  }

  async list(...args: Parameters<ObjectStore['list']>) {
    return (await this.open()).list(...args);
  }

  async delete(...args: Parameters<ObjectStore['delete']>) {
    return (await this.open()).delete(...args);
  }
}
