import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors';

/**
 * Chunked AEAD for streams of any length with flat memory: AES-256-GCM per segment under a
 * per-object key, counter nonces, and a flag in the nonce of the final segment, so reordering,
 * dropping, truncating or appending segments all fail authentication (the STREAM construction).
 *
 * Object layout:
 *   header (32 bytes) = magic "TDMKSEG1" | log2(segment size) | 7 zero bytes | 16-byte salt
 *   segment*          = ciphertext (segment size bytes; the last one 0..segment size) | 16-byte tag
 *
 * The per-object key is HKDF-SHA256(data key, salt, info), so one backup's data key can encrypt
 * any number of objects without nonce reuse. The header is every segment's AAD.
 *
 * `binding` (optional) is appended to the HKDF info: bytes the object must travel with, such as its
 * storage key and the archive header in front of it (repository/archive.ts). Decrypting with any
 * other binding derives another key, so a renamed, swapped or re-labelled object fails its first
 * tag. Without a binding the info is exactly what format 1 and 2 backups were written with.
 */
export const SEGMENT_ALGORITHM = 'aes-256-gcm-stream-v1';
const MAGIC = Buffer.from('TDMKSEG1', 'ascii');
const HEADER_BYTES = 32;
const TAG_BYTES = 16;
const INFO = Buffer.from('tidemark segment key v1', 'ascii');
export const DEFAULT_SEGMENT_LOG2 = 20; // 1 MiB: one GCM call per MiB, ~2 MiB of buffering per stream

/** HKDF's info is limited to 1024 bytes; a longer binding is a caller's bug (pass a digest). */
const MAX_BINDING_BYTES = 1024 - INFO.length;

function objectKey(dataKey: Buffer, salt: Buffer, binding?: Buffer): Buffer {
  if (dataKey.length !== 32) throw new Error('data key must be 32 bytes');
  if (binding && binding.length > MAX_BINDING_BYTES) throw new Error(`segment key binding is ${binding.length} bytes; at most ${MAX_BINDING_BYTES}`);
  const info = binding && binding.length > 0 ? Buffer.concat([INFO, binding]) : INFO;
  return Buffer.from(hkdfSync('sha256', dataKey, salt, info, 32));
}

function nonce(counter: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 2^53 segments of 1 MiB is far beyond any object; the top 3 bytes of the counter stay zero.
  n.writeUIntBE(counter % 2 ** 48, 5, 6);
  n.writeUInt32BE(Math.floor(counter / 2 ** 48), 1);
  n[11] = final ? 1 : 0;
  return n;
}

/**
 * Collects incoming chunks without copying them. A segment is handed over as the chunks it lies in
 * (views): copying it into one buffer of a MiB cost a fresh allocation per MiB — glibc serves those
 * with mmap, so every page of it faulted in anew — and a second one for the cipher's output, which
 * per piece stays in the small sizes malloc keeps warm. That was most of the CPU of encrypting.
 */
class ChunkQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Removes exactly n bytes (n <= length), returned as views of the chunks they lie in. */
  takePieces(n: number): Buffer[] {
    const out: Buffer[] = [];
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0];
      const want = n - filled;
      if (head.length <= want) {
        out.push(head);
        filled += head.length;
        this.chunks.shift();
      } else {
        out.push(head.subarray(0, want));
        this.chunks[0] = head.subarray(want);
        filled += want;
      }
    }
    this.length -= n;
    return out;
  }

  /** Removes and returns exactly n bytes (n <= length). */
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0];
      const want = n - filled;
      if (head.length <= want) {
        head.copy(out, filled);
        filled += head.length;
        this.chunks.shift();
      } else {
        head.copy(out, filled, 0, want);
        this.chunks[0] = head.subarray(want);
        filled += want;
      }
    }
    this.length -= n;
    return out;
  }
}

/** A segment's pieces split into its ciphertext (views) and its last TAG_BYTES (at least that many). */
function splitTag(segment: readonly Buffer[]): { body: Buffer[]; tag: Buffer } {
  const body = [...segment];
  const tail: Buffer[] = [];
  for (let need = TAG_BYTES; need > 0; ) {
    const last = body.pop()!;
    if (last.length <= need) {
      tail.unshift(last);
      need -= last.length;
    } else {
      tail.unshift(last.subarray(last.length - need));
      body.push(last.subarray(0, last.length - need));
      need = 0;
    }
  }
  return { body, tag: tail.length === 1 ? tail[0] : Buffer.concat(tail) };
}

export class EncryptStream extends Transform {
  private readonly header: Buffer;
  private readonly key: Buffer;
  private readonly segmentSize: number;
  private readonly queue = new ChunkQueue();
  private counter = 0;

  /** `binding`: extra HKDF info the object is tied to (see the file comment); none by default. */
  constructor(dataKey: Buffer, segmentLog2 = DEFAULT_SEGMENT_LOG2, binding?: Buffer) {
    super({ readableHighWaterMark: 1 << segmentLog2 });
    const salt = randomBytes(16);
    this.header = Buffer.concat([MAGIC, Buffer.from([segmentLog2]), Buffer.alloc(7), salt]);
    this.key = objectKey(dataKey, salt, binding);
    this.segmentSize = 1 << segmentLog2;
    this.push(this.header);
  }

  private seal(plain: readonly Buffer[], final: boolean): void {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.counter++, final));
    cipher.setAAD(this.header);
    for (const piece of plain) if (piece.length > 0) this.push(cipher.update(piece));
    const rest = cipher.final(); // GCM is a stream mode: nothing is held back, this is empty
    this.push(rest.length > 0 ? Buffer.concat([rest, cipher.getAuthTag()]) : cipher.getAuthTag());
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.queue.push(chunk);
    // Strictly more than a segment buffered: the segment we seal now is certainly not the last.
    while (this.queue.length > this.segmentSize) this.seal(this.queue.takePieces(this.segmentSize), false);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.seal(this.queue.takePieces(this.queue.length), true);
    done();
  }
}

export class DecryptStream extends Transform {
  private readonly queue = new ChunkQueue();
  private header?: Buffer;
  private key?: Buffer;
  private segmentBytes = 0;
  private counter = 0;

  /** `label` names the object in error messages; `binding` must be what it was encrypted with. */
  constructor(
    private readonly dataKey: Buffer,
    private readonly label: string,
    private readonly binding?: Buffer,
  ) {
    super({ readableHighWaterMark: 1 << DEFAULT_SEGMENT_LOG2 });
  }

  private fail(what: string): IntegrityError {
    return new IntegrityError(`${this.label}: ${what}`);
  }

  private readHeader(): void {
    const header = this.queue.take(HEADER_BYTES);
    if (!header.subarray(0, 8).equals(MAGIC)) throw this.fail('header is damaged (or this is not a Tidemark encrypted object)');
    const log2 = header[8];
    if (log2 < 12 || log2 > 26) throw this.fail(`implausible segment size 2^${log2} in header`);
    this.header = header;
    this.segmentBytes = (1 << log2) + TAG_BYTES;
    this.key = objectKey(this.dataKey, header.subarray(16, 32), this.binding);
  }

  /** `segment`: ciphertext and tag, as the pieces they arrived in; its plaintext is released only once the tag matched. */
  private open(segment: readonly Buffer[], final: boolean): void {
    const at = this.counter++;
    const decipher = createDecipheriv('aes-256-gcm', this.key!, nonce(at, final));
    decipher.setAAD(this.header!);
    const { body, tag } = splitTag(segment);
    decipher.setAuthTag(tag);
    const plain = body.map((piece) => decipher.update(piece));
    try {
      decipher.final();
    } catch {
      throw this.fail(
        final
          ? `segment ${at} failed authentication: the object is corrupted or truncated`
          : `segment ${at} failed authentication: the object is corrupted`,
      );
    }
    for (const piece of plain) if (piece.length > 0) this.push(piece);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.queue.push(chunk);
      if (!this.header && this.queue.length >= HEADER_BYTES) this.readHeader();
      // Only a segment followed by more bytes is known not to be the final one.
      while (this.header && this.queue.length > this.segmentBytes) {
        this.open(this.queue.takePieces(this.segmentBytes), false);
      }
      done();
    } catch (e) {
      done(e as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (!this.header) throw this.fail('truncated: shorter than its header');
      if (this.queue.length < TAG_BYTES) throw this.fail('truncated: the final segment is missing');
      this.open(this.queue.takePieces(this.queue.length), true);
      done();
    } catch (e) {
      done(e as Error);
    }
  }
}
