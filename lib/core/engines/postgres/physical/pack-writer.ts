import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { StoredObject } from '../../../pipeline/stored-object';
import type { ZstdOptions } from '../../../pipeline/zstd';
import type { BackupWriter } from '../../../repository/repository';
import type { PackRef } from './block-index';

/** Plaintext bytes per pack: few objects on S3 (1 TB is ~8,000 packs), one multipart upload each. */
export const PACK_BYTES = 128 << 20;

export const packName = (n: number): string => `pack-${String(n + 1).padStart(5, '0')}`;

interface OpenPack {
  readonly ref: PackRef;
  readonly input: PassThrough;
  readonly stored: Promise<StoredObject>;
  bytes: number;
}

/**
 * Appends blocks to pack objects of one backup. A pack is one object through the ordinary pipeline
 * (zstd, segmented AES-GCM under the backup's key, SHA-256 of what is stored); a block is addressed
 * by its offset in the pack's plaintext, and a restore streams each pack it needs once, start to end,
 * picking out its blocks (restore.ts). While one pack finishes uploading the next one fills.
 */
export class PackWriter {
  private current?: OpenPack;
  private finishing?: Promise<StoredObject>;
  private count = 0;
  /** Plaintext bytes written into packs so far. */
  bytes = 0;

  constructor(
    private readonly writer: BackupWriter,
    private readonly compression: ZstdOptions,
    private readonly signal: AbortSignal,
  ) {}

  private open(): OpenPack {
    const ref = { backup: this.writer.id, name: packName(this.count++) };
    const input = new PassThrough({ highWaterMark: 4 << 20 });
    // Every block has its SHA-256 in the index: a second hash over the whole pack would add nothing.
    const stored = this.writer.writeObject(ref.name, input, { compression: this.compression, plainSha256: false, signal: this.signal });
    stored.catch(() => undefined); // awaited in close()/finish(); a failure also surfaces through write()
    return { ref, input, stored, bytes: 0 };
  }

  /**
   * Appends one block, given as the pieces it lies in (views of the tar stream's chunks: a block
   * is not copied to be stored); resolves to where it lives once the pack has room for more.
   */
  async add(pieces: readonly Buffer[]): Promise<{ pack: PackRef; offset: number }> {
    const pack = (this.current ??= this.open());
    const offset = pack.bytes;
    let room = true;
    for (const piece of pieces) {
      pack.bytes += piece.length;
      this.bytes += piece.length;
      room = pack.input.write(piece);
    }
    if (!room) {
      // Wait for room, or for the upload to fail (it would never drain).
      await Promise.race([once(pack.input, 'drain'), pack.stored.then(() => undefined)]);
    }
    if (pack.bytes >= PACK_BYTES) await this.close();
    return { pack: pack.ref, offset };
  }

  /** Ends the open pack; its upload runs on while the next pack fills (one at a time). */
  private async close(): Promise<void> {
    const pack = this.current;
    if (!pack) return;
    this.current = undefined;
    pack.input.end();
    if (this.finishing) await this.finishing;
    this.finishing = pack.stored;
  }

  /** Waits for every pack to be stored. */
  async finish(): Promise<void> {
    await this.close();
    if (this.finishing) await this.finishing;
  }

  /** Stops every upload in flight (the backup failed). */
  abort(error: Error): void {
    this.current?.input.destroy(error);
  }
}
