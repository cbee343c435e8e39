import { Readable } from 'node:stream';
import { StorageError } from '../errors';

/**
 * A download that survives the network. The SDK retries a request until its response starts; after
 * that a reset connection, a response cut short or a server that stops sending mid-body ends the
 * stream, and with it a restore that may have run for an hour. This reader picks up where the
 * bytes stopped: it asks again from the first byte it has not passed on (a Range request pinned to
 * the object's ETag), so the consumer sees one unbroken stream or, after `attempts` tries, one error
 * naming the object.
 *
 * A stall counts only while the consumer is waiting for bytes: a restore that pauses its download
 * (the database is busy) leaves the connection idle on purpose, and that is not a stall.
 */
export interface ResumableReadOptions {
  /** Absolute offset of the first byte of `first`. */
  readonly start: number;
  /** Absolute offset of the last byte wanted (inclusive). */
  readonly end: number;
  /** Opens the object again from an absolute offset to `end`. */
  readonly reopen: (from: number) => Promise<Readable>;
  /** For messages: `s3://bucket/key`. */
  readonly what: string;
  /** Tries in all, the first request included. @default 5 */
  readonly attempts?: number;
  /** No byte for this long while the consumer waits: the connection is given up and reopened. */
  readonly stallMs: number;
  /** @default 200 ms, doubled after each failed try */
  readonly backoffMs?: number;
}

export function resumableRead(first: Readable, options: ResumableReadOptions): Readable {
  return new ResumableRead(first, options);
}

class ResumableRead extends Readable {
  private body: Readable | undefined;
  private position: number;
  private tries = 1;
  private stallTimer: NodeJS.Timeout | undefined;
  private reopening = false;

  constructor(
    first: Readable,
    private readonly options: ResumableReadOptions,
  ) {
    super();
    this.position = options.start;
    this.attach(first);
  }

  override _read(): void {
    if (this.reopening || !this.body) return;
    this.body.resume();
    this.armStall();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.disarmStall();
    this.detach()?.destroy();
    callback(error);
  }

  private attach(body: Readable): void {
    this.body = body;
    body.on('data', (chunk: Buffer) => {
      this.disarmStall();
      const wanted = this.options.end - this.position + 1;
      const piece = chunk.length > wanted ? chunk.subarray(0, Math.max(0, wanted)) : chunk;
      this.position += piece.length;
      if (piece.length > 0 && !this.push(piece)) body.pause();
      else this.armStall();
    });
    body.once('end', () => {
      if (this.position > this.options.end) {
        this.disarmStall();
        this.detach();
        this.push(null);
      } else {
        this.retry(`the response ended ${this.options.end - this.position + 1} bytes early`);
      }
    });
    body.once('error', (e: Error) => this.retry(e.message));
    body.pause();
  }

  private detach(): Readable | undefined {
    const body = this.body;
    body?.removeAllListeners('data').removeAllListeners('end').removeAllListeners('error');
    // A destroyed body may still report its error: nobody listens to it any more.
    body?.on('error', () => undefined);
    this.body = undefined;
    return body;
  }

  private armStall(): void {
    if (this.stallTimer || this.reopening) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      this.retry(`no data for ${this.options.stallMs / 1000} s`);
    }, this.options.stallMs);
  }

  private disarmStall(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  private retry(reason: string): void {
    if (this.destroyed || this.reopening) return;
    this.disarmStall();
    this.detach()?.destroy();
    const attempts = this.options.attempts ?? 5;
    if (this.tries >= attempts) {
      this.destroy(new StorageError(`reading ${this.options.what} failed at byte ${this.position} after ${attempts} tries: ${reason}`, 'Other'));
      return;
    }
    const delay = (this.options.backoffMs ?? 200) * 2 ** (this.tries - 1);
    this.tries++;
    this.reopening = true;
    setTimeout(() => {
      if (this.destroyed) return;
      this.options.reopen(this.position).then(
        (body) => {
          this.reopening = false;
          if (this.destroyed) return void body.destroy();
          this.attach(body);
          this._read();
        },
        (e: Error) => {
          this.reopening = false;
          // The object is gone, or no longer ours to read: asking again will not change that.
          if (e instanceof StorageError && (e.code === 'NoSuchKey' || e.code === 'AccessDenied' || e.code === 'Archived')) this.destroy(e);
          else this.retry(e.message);
        },
      );
    }, delay).unref();
  }
}
