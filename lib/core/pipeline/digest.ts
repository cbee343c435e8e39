import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Pass-through that counts bytes and (unless told not to) computes their SHA-256 on the way. */
export class DigestStream extends Transform {
  bytes = 0;
  private readonly hash?: Hash;
  private hex?: string;

  constructor(
    private readonly onBytes?: (n: number) => void,
    hashing = true,
  ) {
    super({ highWaterMark: 1 << 20 });
    if (hashing) this.hash = createHash('sha256');
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(chunk.length);
    done(null, chunk);
  }

  /** Hex SHA-256 of everything that passed; valid once the stream has ended. */
  get sha256(): string {
    if (!this.hash) throw new Error('DigestStream was created without hashing');
    this.hex ??= this.hash.digest('hex');
    return this.hex;
  }
}
