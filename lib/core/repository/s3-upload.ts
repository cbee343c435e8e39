import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { abortReason, destroyOnAbort, untilAborted } from '../abort';
import { sendWithin } from './s3-answer-timeout';

/** Where a new object goes. */
export interface NewObject {
  readonly Bucket: string;
  readonly Key: string;
  readonly ContentType?: string;
}

export interface UploadShape {
  /** Bytes per part; a body that fits in one part goes up in a single PUT. */
  readonly partSize: number;
  /** Parts in flight at once. */
  readonly queueSize: number;
  /**
   * A request whose answer has not started within this long, plus as long again for every
   * STALL_BYTES it carries, is sent again, `attempts` times in all: at the default 30 s a 16 MiB
   * part may take 90 s (a link of at least ~190 KB/s).
   */
  readonly stallMs: number;
  readonly attempts: number;
}

const STALL_BYTES = 8 * 1024 * 1024;

// An upload that stops short still gets this long to tidy up: for a CreateMultipartUpload in flight
// to answer (only its upload id lets us abort it), then for the AbortMultipartUpload itself.
const CLEANUP_MS = 5_000;

/**
 * Writes `body` as a new object: one PUT when it fits in a part, a multipart upload otherwise, and
 * either way conditional on the key being absent (If-None-Match: *), so an object that appeared
 * meanwhile is never replaced. Every request carries `signal`, so an abort ends the upload at
 * whatever it is waiting for, with the abort reason. A multipart upload that does not complete
 * (abort, failed part, failed producer, refused completion) is aborted before this returns: an
 * interrupted backup leaves no parts behind to pay for.
 */
export async function uploadNewObject(
  client: S3Client,
  target: NewObject,
  body: Readable | Buffer,
  shape: UploadShape,
  signal?: AbortSignal,
): Promise<void> {
  // Ends every request and wait of this upload: the caller's abort, or the first failure.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(abortReason(signal as AbortSignal));
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  // Also ends a read that waits on a stalled producer, instead of leaving it pending.
  const stopDestroying = body instanceof Readable ? destroyOnAbort(body, signal) : () => undefined;
  let upload: MultipartUpload | undefined;
  const what = `s3://${target.Bucket}/${target.Key}`;
  /** One request of this upload, ended by `stop`, sent again when its answer never starts. */
  const patiently = <T>(bytes: number, action: string, send: (abortSignal: AbortSignal) => Promise<T>): Promise<T> =>
    untilAborted(
      sendWithin(send, { limitMs: shape.stallMs * (1 + bytes / STALL_BYTES), what: `${action} ${what}`, attempts: shape.attempts, signal: stop.signal }),
      stop.signal,
    );
  try {
    const putWhole = (Body: Buffer): Promise<unknown> =>
      patiently(Body.length, 'write', (abortSignal) => client.send(new PutObjectCommand({ ...target, Body, IfNoneMatch: '*' }), { abortSignal }));
    const parts = partsOf(body, shape.partSize);
    const first = await untilAborted(parts.next(), stop.signal);
    if (first.done) {
      await putWhole(Buffer.alloc(0));
      return;
    }
    const second = await untilAborted(parts.next(), stop.signal);
    if (second.done) {
      await putWhole(first.value);
      return;
    }
    upload = await MultipartUpload.create(client, target, (send) => sendWithin(send, { limitMs: shape.stallMs, what: `start the upload of ${what}`, attempts: shape.attempts }));
    const UploadId = await untilAborted(upload.id, stop.signal);
    const done: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let partNumber = 0;
    const send = (data: Buffer): void => {
      const PartNumber = ++partNumber;
      const sending = patiently(data.length, `write part ${PartNumber} of`, (abortSignal) =>
        client.send(new UploadPartCommand({ Bucket: target.Bucket, Key: target.Key, UploadId, PartNumber, Body: data }), { abortSignal }),
      )
        .then(({ ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256 }) => {
          if (!ETag) throw new Error(`S3 answered part ${PartNumber} without an ETag`);
          done.push({ PartNumber, ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256 });
        })
        .catch((err: unknown) => {
          if (!stop.signal.aborted) stop.abort(err);
        })
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    };
    send(first.value);
    let next: IteratorResult<Buffer, undefined> = second;
    while (!next.done) {
      send(next.value);
      while (inFlight.size >= shape.queueSize) await untilAborted(Promise.race(inFlight), stop.signal);
      next = await untilAborted(parts.next(), stop.signal);
    }
    await untilAborted(Promise.all(inFlight), stop.signal);
    done.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    const complete = () =>
      new CompleteMultipartUploadCommand({ Bucket: target.Bucket, Key: target.Key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: done } });
    await patiently(0, 'complete', (abortSignal) => client.send(complete(), { abortSignal }));
  } catch (err) {
    if (!stop.signal.aborted) stop.abort(err);
    await upload?.abandon();
    throw stop.signal.reason;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stopDestroying();
  }
}

type Within = <T>(send: (abortSignal: AbortSignal) => Promise<T>) => Promise<T>;

/** A multipart upload being created, and how to abort it whatever state its creation is in. */
class MultipartUpload {
  /** Ends the CreateMultipartUpload request once cleanup stops waiting for it. */
  private readonly giveUp = new AbortController();
  readonly id: Promise<string>;

  private constructor(
    private readonly client: S3Client,
    private readonly target: NewObject,
    checksum: { ChecksumAlgorithm?: ChecksumAlgorithm },
    within: Within,
  ) {
    // Not ended by the upload's abort: S3 may create the upload even when we hang up, and only the
    // answer tells which one to abort. abandon() waits for it instead, for a bounded time.
    const create = (abortSignal: AbortSignal) =>
      client.send(new CreateMultipartUploadCommand({ ...target, ...checksum }), { abortSignal: AbortSignal.any([abortSignal, this.giveUp.signal]) });
    this.id = within(create).then(({ UploadId }) => {
      if (!UploadId) throw new Error('S3 answered CreateMultipartUpload without an UploadId');
      return UploadId;
    });
  }

  static async create(client: S3Client, target: NewObject, within: Within): Promise<MultipartUpload> {
    // As @aws-sdk/lib-storage does: the SDK adds a CRC32 to every part by default, and the upload
    // must then be declared with that algorithm for S3 to accept the parts' checksums.
    const checksums = await client.config.requestChecksumCalculation();
    return new MultipartUpload(client, target, checksums === 'WHEN_SUPPORTED' ? { ChecksumAlgorithm: ChecksumAlgorithm.CRC32 } : {}, within);
  }

  /** Never throws: what it cannot abort, the bucket's lifecycle rule (AbortIncompleteUploads) removes later. */
  async abandon(): Promise<void> {
    const deadline = AbortSignal.timeout(CLEANUP_MS);
    try {
      const UploadId = await untilAborted(this.id, deadline);
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId }), { abortSignal: deadline });
    } catch {
      // Unreachable, refused, or already completed: nothing more to do here.
    } finally {
      this.giveUp.abort();
    }
  }
}

/** The body in parts of exactly `partSize` bytes, the last one shorter (and none for an empty body). */
async function* partsOf(body: Readable | Buffer, partSize: number): AsyncGenerator<Buffer, undefined> {
  if (Buffer.isBuffer(body)) {
    for (let at = 0; at < body.length; at += partSize) yield body.subarray(at, at + partSize);
    return undefined;
  }
  let pending: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    let rest = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    while (size + rest.length >= partSize) {
      const take = partSize - size;
      yield Buffer.concat([...pending, rest.subarray(0, take)]);
      rest = rest.subarray(take);
      pending = [];
      size = 0;
    }
    if (rest.length > 0) {
      pending.push(rest);
      size += rest.length;
    }
  }
  if (size > 0) yield Buffer.concat(pending);
  return undefined;
}
