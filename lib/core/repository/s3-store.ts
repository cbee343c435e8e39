import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectTaggingCommand,
  RestoreObjectCommand,
  S3Client,
  type _Error as S3DeleteError,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { StorageError } from '../errors';
import { abortReason, sleep, throwIfAborted, untilAborted } from '../abort';
import pLimit from 'p-limit';
import { formatBytes } from '../format';
import { assertValidKey, assertValidPrefix, checkRange, compareKeys } from './keys';
import { describeS3Location, safeEndpoint, type S3Location } from './s3-location';
import { resumableRead } from './resumable-read';
import { sendWithin } from './s3-answer-timeout';
import { uploadNewObject } from './s3-upload';
import {
  describeEstimate,
  effectiveTier,
  estimateRehydration,
  isArchiveClass,
  parseRestoreHeader,
  type ArchiveClass,
  type RehydrateOptions,
  type RehydrationResult,
} from './rehydrate';
import type { ListOptions, ListPage, ObjectStore, PutOptions, StoredObjectInfo } from './storage';

export type { S3Location };

// 16 MiB × 4 in flight keeps memory flat (~64 MiB plus the part being filled) for any object size
// and still reaches 10,000 parts × 16 MiB = 156 GiB per object.
const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 4;
const DELETE_BATCH = 1000;
const PARALLEL_HEADS = 16;
/**
 * A request whose answer has not started after this long, or a download that delivers nothing for
 * this long while its reader waits, is given up and sent again (TIDEMARK_S3_STALL_SECONDS).
 */
const DEFAULT_STALL_MS = 30_000;
/** Tries of a request whose answer never starts (the SDK's own retries cover errors and resets). */
const STALL_ATTEMPTS = 4;

interface ArchiveState {
  readonly key: string;
  readonly size: number;
  readonly storageClass?: ArchiveClass;
  readonly restore: 'none' | 'ongoing' | 'restored';
}

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);

/** The repository in an S3 bucket (or an S3-compatible server), under an optional key prefix. */
export class S3Store implements ObjectStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly endpointShown: string;
  private readonly stallMs: number;

  constructor(location: S3Location) {
    const stallSeconds = Number(process.env.TIDEMARK_S3_STALL_SECONDS);
    this.stallMs = stallSeconds > 0 ? stallSeconds * 1000 : DEFAULT_STALL_MS;
    this.bucket = location.bucket;
    this.keyPrefix = location.prefix === '' ? '' : `${location.prefix}/`;
    this.endpointShown = location.endpoint ? safeEndpoint(location.endpoint) : `https://s3.${location.region}.amazonaws.com`;
    this.description = describeS3Location(location);
    this.client = new S3Client({
      region: location.region,
      ...(location.endpoint ? { endpoint: location.endpoint } : {}),
      forcePathStyle: location.forcePathStyle,
      // Credentials come from the default chain (env, profile, container/instance role), never the config.
      // A dead endpoint must fail in seconds, not after minutes of retries (5 tries back off for
      // about 1.5 s in all), while a few 500s, SlowDowns and resets in a row are ridden out. No
      // socket idle timeout: a paused reader (restore waiting on the database) legitimately leaves
      // a download idle; stalls are caught by sendWithin and resumableRead instead.
      maxAttempts: 5,
      requestHandler: { connectionTimeout: 3_000 },
    });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<{ bytes: number }> {
    assertValidKey(key);
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    // IfNoneMatch in the upload is the real guard on AWS; this check is for servers that ignore it
    // (s3rver, older MinIO) and spares uploading gigabytes only to be refused.
    if ((await this.headObject(key, signal)) !== undefined) throw this.exists(key);

    const counted = countBytes(body);
    const target = { Bucket: this.bucket, Key: this.keyPrefix + key, ...(options.contentType ? { ContentType: options.contentType } : {}) };
    try {
      await uploadNewObject(this.client, target, counted.body, { partSize: PART_SIZE, queueSize: QUEUE_SIZE, stallMs: this.stallMs, attempts: STALL_ATTEMPTS }, signal);
      return { bytes: counted.bytes() };
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      // A failing producer's error is passed on as it is, not as a storage error.
      if (counted.failure() !== undefined) throw counted.failure();
      throw this.mapError(err, 'upload', key);
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    assertValidKey(key);
    if (range) checkRange(range, undefined, this.where(key));
    const { body, size, etag } = await this.getObject(key, range);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    if (end < start) return body;
    // Reopened at an offset, the read is pinned to this version of the object (If-Match).
    const reopen = async (from: number) => (await this.getObject(key, { start: from, end }, etag)).body;
    return resumableRead(body, { start, end, reopen, what: this.where(key), stallMs: this.stallMs });
  }

  /** One GetObject, its headers awaited within the stall limit (retried when they do not come). */
  private async getObject(key: string, range?: { start: number; end?: number }, etag?: string): Promise<{ body: Readable; size: number; etag?: string }> {
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    try {
      const input = { Bucket: this.bucket, Key: this.keyPrefix + key, Range, ...(etag ? { IfMatch: etag } : {}) };
      const response = await this.sendWithin((abortSignal) => this.client.send(new GetObjectCommand(input), { abortSignal }), `read ${this.where(key)}`);
      if (!(response.Body instanceof Readable)) throw new StorageError(`S3 returned no body for ${this.where(key)}`);
      if (range) this.checkServedRange(key, range, response.ContentRange, response.Body);
      const size = range ? Number(/\/(\d+)$/.exec(response.ContentRange ?? '')?.[1]) : (response.ContentLength ?? 0);
      return { body: response.Body, size, etag: response.ETag };
    } catch (err) {
      throw this.mapError(err, 'read', key, Range);
    }
  }

  /** A read-only request, given up and sent again when its answer does not start in time. */
  private sendWithin<T>(send: (abortSignal: AbortSignal) => Promise<T>, what: string, signal?: AbortSignal): Promise<T> {
    return sendWithin(send, { limitMs: this.stallMs, what, attempts: STALL_ATTEMPTS, signal });
  }

  async getBytes(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    return this.headObject(key);
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    const objects: StoredObjectInfo[] = [];
    const prefixes: string[] = [];
    for await (const page of this.listPages(prefix, options)) {
      objects.push(...page.objects);
      prefixes.push(...page.prefixes);
    }
    // S3 already answers in key order; S3-compatible servers are not all that careful.
    objects.sort((a, b) => compareKeys(a.key, b.key));
    prefixes.sort(compareKeys);
    return { objects, prefixes };
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncIterable<ListPage> {
    assertValidPrefix(prefix);
    const fullPrefix = this.keyPrefix + prefix;
    let token: string | undefined;
    do {
      const input = { Bucket: this.bucket, Prefix: fullPrefix === '' ? undefined : fullPrefix, Delimiter: options.delimiter, ContinuationToken: token };
      const response = await this.sendWithin((abortSignal) => this.client.send(new ListObjectsV2Command(input), { abortSignal }), `list ${this.where(prefix)}`)
        .catch((err: unknown) => {
          throw this.mapError(err, 'list', prefix);
        });
      const objects: StoredObjectInfo[] = [];
      for (const object of response.Contents ?? []) {
        if (!object.Key) continue;
        objects.push({
          key: object.Key.slice(this.keyPrefix.length),
          size: object.Size ?? 0,
          ...(object.LastModified ? { modifiedAt: object.LastModified.toISOString() } : {}),
          ...(object.StorageClass ? { storageClass: object.StorageClass } : {}),
        });
      }
      const prefixes = (response.CommonPrefixes ?? []).flatMap((c) => (c.Prefix ? [c.Prefix.slice(this.keyPrefix.length)] : []));
      yield { objects, prefixes };
      token = response.IsTruncated ? response.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: string[]): Promise<void> {
    keys.forEach(assertValidKey);
    const failures: S3DeleteError[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const response = await this.client
        .send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.keyPrefix + key })), Quiet: true },
          }),
        )
        .catch((err: unknown) => {
          throw this.mapError(err, 'delete', batch[0] as string);
        });
      failures.push(...(response.Errors ?? []));
    }
    if (failures.length === 0) return;
    const shown = failures
      .slice(0, 3)
      .map((f) => `${f.Key} (${f.Code}: ${f.Message})`)
      .join(', ');
    const more = failures.length > 3 ? ` and ${failures.length - 3} more` : '';
    const code = failures.every((f) => f.Code === 'AccessDenied') ? 'AccessDenied' : 'Other';
    throw new StorageError(`could not delete ${failures.length} object(s) from s3://${this.bucket}: ${shown}${more}`, code);
  }

  async rehydrate(keys: readonly string[], options: RehydrateOptions = {}): Promise<RehydrationResult> {
    const { signal, progress } = options;
    const limit = pLimit(PARALLEL_HEADS);
    const states = await Promise.all(keys.map((key) => limit(() => this.archiveState(key, signal))));
    const cold = states.filter((s): s is ArchiveState & { storageClass: ArchiveClass } => s.storageClass !== undefined && s.restore !== 'restored');
    if (cold.length === 0) return { objects: 0, bytes: 0 };
    const tier = options.tier ?? 'Standard';
    const estimate = estimateRehydration(cold.map((c) => ({ bytes: c.size, storageClass: c.storageClass })), tier);
    (options.onEstimate ?? ((e) => progress?.note(describeEstimate(e, formatBytes))))(estimate);
    await Promise.all(
      cold
        .filter((c) => c.restore === 'none')
        .map((c) =>
          limit(async () => {
            const request = { Days: options.days ?? 7, GlacierJobParameters: { Tier: effectiveTier(c.storageClass, tier) } };
            await this.client.send(new RestoreObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + c.key, RestoreRequest: request }), { abortSignal: signal }).catch((err: unknown) => {
              // Someone (an earlier, interrupted restore) asked already: just wait for it.
              if ((err as { name?: string }).name !== 'RestoreAlreadyInProgress') throw this.mapError(err, 'rehydrate', c.key);
            });
          }),
        ),
    );
    progress?.start(`rehydrate ${cold.length} object${cold.length === 1 ? '' : 's'}`, estimate.bytes);
    try {
      let pending = cold;
      while (pending.length > 0) {
        await sleep(options.pollMs ?? 60_000, signal);
        const now = await Promise.all(pending.map((c) => limit(() => this.archiveState(c.key, signal))));
        const done = now.filter((s) => s.restore === 'restored' || s.storageClass === undefined);
        progress?.advance(done.reduce((n, s) => n + s.size, 0));
        pending = pending.filter((c) => !done.some((d) => d.key === c.key));
      }
    } finally {
      progress?.stop();
    }
    return { objects: cold.length, bytes: estimate.bytes, estimate };
  }

  async tag(keys: readonly string[], tag: { readonly key: string; readonly value: string }): Promise<void> {
    const limit = pLimit(PARALLEL_HEADS);
    await Promise.all(
      keys.map((key) =>
        limit(async () => {
          assertValidKey(key);
          // Tidemark sets no other tags: the tag set is exactly the tier tag.
          const input = { Bucket: this.bucket, Key: this.keyPrefix + key, Tagging: { TagSet: [{ Key: tag.key, Value: tag.value }] } };
          await this.client.send(new PutObjectTaggingCommand(input)).catch((err: unknown) => {
            throw this.mapError(err, 'tag', key);
          });
        }),
      ),
    );
  }

  /** The object's cold class (undefined: readable as it is) and its restore status. */
  private async archiveState(key: string, signal?: AbortSignal): Promise<ArchiveState> {
    throwIfAborted(signal);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }), { abortSignal: signal });
      return { key, size: r.ContentLength ?? 0, storageClass: isArchiveClass(r.StorageClass) ? r.StorageClass : undefined, restore: parseRestoreHeader(r.Restore) };
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      throw this.mapError(err, 'inspect', key);
    }
  }

  /** `head`, ended by `signal` (with its reason) even while the request waits on the server. */
  private async headObject(key: string, signal?: AbortSignal): Promise<{ size: number } | undefined> {
    assertValidKey(key);
    try {
      const input = { Bucket: this.bucket, Key: this.keyPrefix + key };
      const request = this.sendWithin((abortSignal) => this.client.send(new HeadObjectCommand(input), { abortSignal }), `inspect ${this.where(key)}`, signal);
      const response = await untilAborted(request, signal);
      return { size: response.ContentLength ?? 0 };
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      const mapped = this.mapError(err, 'inspect', key);
      if (mapped.code === 'NoSuchKey') return undefined;
      throw mapped;
    }
  }

  /**
   * A server that ignores or misreads Range (s3rver answers bytes=0-0 with the whole object) must
   * not hand back other bytes than asked for.
   */
  private checkServedRange(key: string, range: { start: number; end?: number }, served: string | undefined, body: Readable): void {
    const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(served ?? '');
    const size = Number(match?.[3]);
    const expected = `${range.start}-${Math.min(range.end ?? size - 1, size - 1)}`;
    if (match && `${match[1]}-${match[2]}` === expected) return;
    body.destroy();
    throw new StorageError(
      `S3 endpoint ${this.endpointShown} answered ${served ?? 'the whole object'} for bytes=${range.start}-${range.end ?? ''} of ${this.where(key)}`,
    );
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${this.keyPrefix}${key}`;
  }

  private exists(key: string): StorageError {
    return new StorageError(`object already exists at ${this.where(key)}; objects are never overwritten`, 'ObjectExists');
  }

  /** One line naming the bucket/key (and the endpoint when that is the problem). */
  private mapError(err: unknown, action: string, key: string, range?: string): StorageError {
    if (err instanceof StorageError) return err;
    const e = (typeof err === 'object' && err !== null ? err : {}) as {
      name?: string; code?: string; message?: string; errors?: { code?: string }[];
      $metadata?: { httpStatusCode?: number };
    };
    const name = e.name ?? '';
    const status = e.$metadata?.httpStatusCode;
    const where = this.where(key);
    const options = { cause: err };
    // The retry middleware rewraps errors from another realm (jest's sandbox) into a bare message,
    // so the code is looked for in the message too.
    const networkCode = [e.code, ...(e.errors ?? []).map((x) => x.code), ...(e.message?.match(/\bE[A-Z_]+\b/g) ?? [])]
      .find((c) => c !== undefined && NETWORK_ERRORS.has(c));
    if (networkCode || name === 'TimeoutError') {
      const reason = networkCode ?? 'connection timed out';
      return new StorageError(`cannot reach the S3 endpoint ${this.endpointShown} (${reason}) to ${action} ${where}`, 'Unreachable', options);
    }
    // A listing names no key: its bare 404 (some servers send no error code) is the bucket's.
    if (name === 'NoSuchBucket' || (status === 404 && action === 'list' && name !== 'NoSuchKey')) {
      return new StorageError(`bucket '${this.bucket}' does not exist at ${this.endpointShown}`, 'Other', options);
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new StorageError(`no object at ${where}`, 'NoSuchKey', options);
    }
    // 409 ConditionalRequestConflict: another create-only write of this key is in flight. Objects are
    // never overwritten, so this write must not win either way: the key is taken.
    if (name === 'PreconditionFailed' || status === 412 || name === 'ConditionalRequestConflict' || (status === 409 && action === 'upload')) {
      return this.exists(key);
    }
    if (name === 'InvalidObjectState') {
      return new StorageError(`${where} is in cold storage (GLACIER or DEEP_ARCHIVE): it must be rehydrated before it can be read (tidemark restore does this and says how long it takes)`, 'Archived', options);
    }
    if (name === 'InvalidRange' || status === 416) {
      return new StorageError(`byte range ${range ?? ''} is outside ${where}`, 'Other', options);
    }
    if (name === 'CredentialsProviderError') {
      return new StorageError(
        `no AWS credentials to ${action} ${where}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run with a role`,
        'AccessDenied', options,
      );
    }
    if (['AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'].includes(name) || status === 403) {
      return new StorageError(`access denied to ${action} ${where} (${name || 'HTTP 403'}): check the credentials and the bucket policy`, 'AccessDenied', options);
    }
    // A HEAD's error has no body, so the SDK knows no code: the status is all there is to say.
    if ((name === '' || name === 'Unknown' || name === 'UnknownError') && status !== undefined) {
      return new StorageError(`cannot ${action} ${where} (HTTP ${status})`, 'Other', options);
    }
    const detail = `${name}${e.message ? `: ${e.message}` : ''}`.replace(/\s+/g, ' ').trim();
    return new StorageError(`cannot ${action} ${where}: ${detail || String(err)}`, 'Other', options);
  }
}

/** Counts what the upload reads and remembers whether the producer failed, to pass its error on as-is. */
function countBytes(body: Readable | Buffer): { body: Readable | Buffer; bytes(): number; failure(): unknown } {
  if (Buffer.isBuffer(body)) return { body, bytes: () => body.length, failure: () => undefined };
  let bytes = 0;
  let failure: unknown;
  async function* pass(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) {
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        bytes += buffer.length;
        yield buffer;
      }
    } catch (err) {
      failure = err;
      throw err;
    }
  }
  return { body: Readable.from(pass(), { objectMode: false }), bytes: () => bytes, failure: () => failure };
}
