import { once } from 'node:events';
import { PassThrough, type Transform, type Writable } from 'node:stream';
import type { StoredObject } from '../../../pipeline/stored-object';
import { IN_PROCESS_ZSTD, zstdCompress, type ZstdOptions } from '../../../pipeline/zstd';
import type { BackupWriter } from '../../../repository/repository';
import type { PackRef } from './block-index';

/** Plaintext bytes per pack: few objects on S3 (1 TB is ~8,000 packs), one multipart upload each. */
export const PACK_BYTES = 128 << 20;

export const packName = (n: number): string => `pack-${String(n + 1).padStart(5, '0')}`;

interface OpenPack {
  readonly ref: PackRef;
  /** Where the blocks go: the pack's zlib compressor (STAGE_BYTES > 0), or the stream into a zstd process. */
  readonly input: Writable;
  readonly stored: Promise<StoredObject>;
  bytes: number;
  /** Blocks gathered into one write of STAGE_BYTES (taken from the pool when the first byte comes), and how much of it is filled. */
  stage?: Buffer;
  staged: number;
}

/**
 * Where node compresses (IN_PROCESS_ZSTD), blocks go to zlib in 1 MiB writes, not piece
 * by piece (pieces average ~32 KiB): each write is a round trip to the thread pool, and ~25,000 of
 * them per GiB cost more than the copy that gathers them (full backup at scale 50 on Node 22,
 * bench/backup-ab.ts, 5 interleaved rounds: 0.92x the time of piece by piece). Into a zstd
 * process's pipe the pieces go as they are: gathered there, the same bench on Node 20 took 1.2x
 * the time and ~1 CPU-s more, measured with a fresh buffer per write, before the pool below. The
 * pool cannot serve that path as it is: the writes go through writeObject's stream stages, whose
 * callbacks come before the pipe has the bytes.
 */
const STAGE_BYTES = IN_PROCESS_ZSTD ? 1 << 20 : 0;
/**
 * Stages a writer uses over and over: a stage goes back to the pool once zlib has compressed it
 * (its write callback). V8 answers external memory (Buffer backing stores) with full garbage
 * collections, one per ~64 MiB, and a fresh stage per write was such memory whose pages were also
 * faulted in anew: a scale-50 full ran 37 mark-compacts with fresh stages, 1 with the pool, in 0.785x
 * the time (BENCHMARKS.md). Four in flight keep zlib's thread busy while node fills the next; when
 * all are out, the backup waits for one: the pool is also the backpressure.
 */
const STAGES = 4;

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
  /** Stages not in zlib's hands (STAGE_BYTES > 0); made as needed, at most STAGES. */
  private readonly free: Buffer[] = [];
  private made = 0;
  private stageWaiter?: () => void;
  /** Plaintext bytes written into packs so far. */
  bytes = 0;

  constructor(
    private readonly writer: BackupWriter,
    private readonly compression: ZstdOptions,
    private readonly signal: AbortSignal,
  ) {}

  private open(): OpenPack {
    const ref = { backup: this.writer.id, name: packName(this.count++) };
    if (STAGE_BYTES > 0) {
      // Node compresses: stages go straight to zlib, whose write callback says when a stage is free.
      const compressor = zstdCompress(this.compression, { inProcess: true });
      const plainBytes = () => (compressor as Transform & { bytesWritten: number }).bytesWritten;
      const stored = this.writer.writeCompressed(ref.name, { output: compressor, plainBytes }, { compression: this.compression, signal: this.signal });
      stored.catch(() => undefined); // awaited in close()/finish(); a failure also surfaces through add()
      return { ref, input: compressor, stored, bytes: 0, staged: 0 };
    }
    const through = new PassThrough({ highWaterMark: 4 << 20 });
    // Every block has its SHA-256 in the index: a second hash over the whole pack would add nothing.
    const stored = this.writer.writeObject(ref.name, through, { compression: this.compression, plainSha256: false, signal: this.signal });
    stored.catch(() => undefined); // awaited in close()/finish(); a failure also surfaces through write()
    return { ref, input: through, stored, bytes: 0, staged: 0 };
  }

  /**
   * Appends one block, given as the pieces it lies in (views of the tar stream's chunks: a block
   * is not assembled to be stored, only gathered into stages where node compresses); resolves to
   * where it lives once the pack has room for more.
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
        pack.stage ??= await this.takeStage(pack);
        const n = piece.copy(pack.stage, pack.staged, at);
        pack.staged += n;
        at += n;
        if (pack.staged === STAGE_BYTES) this.flush(pack);
      }
    }
    if (!room) {
      // Wait for room, or for the upload to fail (it would never drain).
      await Promise.race([once(pack.input, 'drain'), pack.stored.then(() => undefined)]);
    }
    if (pack.bytes >= PACK_BYTES) await this.close();
    return { pack: pack.ref, offset };
  }

  /** A free stage, a new one while fewer than STAGES exist, else the next one zlib is done with; rejects if the pack's upload fails first. */
  private async takeStage(pack: OpenPack): Promise<Buffer> {
    for (;;) {
      const stage = this.free.pop();
      if (stage) return stage;
      if (this.made < STAGES) {
        this.made++;
        return Buffer.allocUnsafeSlow(STAGE_BYTES);
      }
      await Promise.race([new Promise<void>((resolve) => (this.stageWaiter = resolve)), pack.stored]);
    }
  }

  private flush(pack: OpenPack): void {
    const stage = pack.stage!;
    pack.input.write(stage.subarray(0, pack.staged), (error) => {
      // A stage of a failed pack may still be in zlib's hands: it is dropped, not reused.
      if (error) this.made--;
      else this.free.push(stage);
      this.stageWaiter?.();
      this.stageWaiter = undefined;
    });
    pack.stage = undefined;
    pack.staged = 0;
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
