import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { StoredObject } from '../../../pipeline/stored-object';
import { IN_PROCESS_ZSTD, type ZstdOptions } from '../../../pipeline/zstd';
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
  /** Blocks gathered into one write of STAGE_BYTES, and how much of it is filled (made when the first byte comes). */
  stage?: Buffer;
  staged: number;
}

/**
 * Where node compresses (IN_PROCESS_ZSTD), blocks go to zlib in 1 MiB writes, not piece
 * by piece (pieces average ~32 KiB): each write is a round trip to the thread pool, and ~25,000 of
 * them per GiB cost more than the copy that gathers them (full backup at scale 50 on Node 22,
 * bench/backup-ab.ts, 5 interleaved rounds: 0.92x the time of piece by piece). Into a zstd
 * process's pipe the pieces go as they are: gathered there, the same bench on Node 20 took 1.2x
 * the time and ~1 CPU-s more (fresh 1 MiB buffers, each faulted in).
 */
const STAGE_BYTES = IN_PROCESS_ZSTD ? 1 << 20 : 0;

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
    const stored = this.writer.writeObject(ref.name, input, { compression: this.compression, plainSha256: false, inProcessZstd: true, signal: this.signal });
    stored.catch(() => undefined); // awaited in close()/finish(); a failure also surfaces through write()
    return { ref, input, stored, bytes: 0, staged: 0 };
  }

  /**
   * Appends one block, given as the pieces it lies in (views of the tar stream's chunks: a block
   * is not assembled to be stored, only gathered into STAGE_BYTES writes where node compresses);
   * resolves to where it lives once the pack has room for more.
   */
  async add(pieces: readonly Buffer[]): Promise<{ pack: PackRef; offset: number }> {
    const pack = (this.current ??= this.open());
    const offset = pack.bytes;
    let room = true;
    for (const piece of pieces) {
      pack.bytes += piece.length;
      this.bytes += piece.length;
      if (STAGE_BYTES === 0) {
        room = pack.input.write(piece);
        continue;
      }
      for (let at = 0; at < piece.length; ) {
        const n = piece.copy((pack.stage ??= Buffer.allocUnsafeSlow(STAGE_BYTES)), pack.staged, at);
        pack.staged += n;
        at += n;
        if (pack.staged === STAGE_BYTES) room = this.flush(pack) && room;
      }
    }
    if (!room) {
      // Wait for room, or for the upload to fail (it would never drain).
      await Promise.race([once(pack.input, 'drain'), pack.stored.then(() => undefined)]);
    }
    if (pack.bytes >= PACK_BYTES) await this.close();
    return { pack: pack.ref, offset };
  }

  private flush(pack: OpenPack): boolean {
    const full = pack.stage!.subarray(0, pack.staged);
    pack.stage = undefined;
    pack.staged = 0;
    return pack.input.write(full);
  }

  /** Ends the open pack; its upload runs on while the next pack fills (one at a time). */
  private async close(): Promise<void> {
    const pack = this.current;
    if (!pack) return;
    this.current = undefined;
    if (pack.staged > 0) this.flush(pack);
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
