import { IntegrityError } from '../../../errors';

/**
 * The block index of one physical backup: for every file of the cluster its size, mode and, per
 * block, where the block's bytes live (backup, pack, offset, length) and their SHA-256. Blocks the
 * backup took over from its parent keep the parent's location, so the newest backup's index alone
 * restores it (pgBackRest's rule: restore reads one manifest).
 *
 * Stored as binary chunks of about CHUNK_BYTES (records never split across chunks), written in the
 * order the base backup's tar delivered the files, plus a small JSON directory: the chunk names, the
 * table of packs the records point into, and for each file the chunk and offset of its record. A
 * reader holds the directory and a few chunks (an LRU), never the whole index, whatever the size of
 * the cluster; consecutive lookups in tar order hit the same chunk.
 *
 * A block of zeros (new pages, blanked WAL pages, preallocated space) is stored nowhere: its
 * record names the pseudo-pack ZERO_PACK, and a restore leaves the hole the file's size made.
 *
 * Record layout (little-endian):
 *   file:  u16 path length, path (UTF-8), u32 mode, f64 size, f64 mtime (s), u32 block count
 *   block: u32 pack (index into the directory's packs), u48 offset in the pack's plaintext,
 *          u32 length, 32 bytes SHA-256                                     = 46 bytes per block
 */

export const INDEX_FORMAT = 'tidemark.pg-physical-index';
export const CHUNK_BYTES = 4 << 20;
export const BLOCK_RECORD_BYTES = 46;
const FILE_HEADER_BYTES = 2 + 4 + 8 + 8 + 4;
const LRU_CHUNKS = 4;

export interface PackRef {
  readonly backup: string;
  /** The pack's object name in that backup's manifest. */
  readonly name: string;
}

export interface BlockLocation {
  readonly pack: PackRef;
  readonly offset: number;
  readonly length: number;
  readonly sha256: Buffer;
}

export interface IndexedFile {
  readonly path: string;
  readonly mode: number;
  readonly size: number;
  readonly mtime: number;
  readonly blocks: readonly BlockLocation[];
}

export interface IndexDirectory {
  readonly format: typeof INDEX_FORMAT;
  readonly version: 1;
  readonly blockSize: number;
  readonly packs: readonly PackRef[];
  readonly chunks: readonly string[];
  /** [path, chunk number, offset of the file's record in the chunk] */
  readonly files: readonly (readonly [string, number, number])[];
  /** [path, mode]: every directory of the data directory, empty ones included. */
  readonly directories: readonly (readonly [string, number])[];
}

/** Where an all-zero block "lives": nowhere (pack number 0xFFFFFFFF in a record). */
export const ZERO_PACK: PackRef = Object.freeze({ backup: '', name: 'zeros' });
const ZERO_PACK_ID = 0xffffffff;

export const chunkName = (n: number): string => `index-${String(n + 1).padStart(5, '0')}`;
export const INDEX_DIRECTORY_NAME = 'index.json';

/** Builds the index as files arrive; `storeChunk` writes one finished chunk object. */
export class BlockIndexWriter {
  private readonly packIds = new Map<string, number>();
  private readonly packs: PackRef[] = [];
  private readonly chunkNames: string[] = [];
  private readonly files: [string, number, number][] = [];
  private readonly directories: [string, number][] = [];
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly blockSize: number,
    private readonly storeChunk: (name: string, bytes: Buffer) => Promise<void>,
  ) {}

  addDirectory(path: string, mode: number): void {
    this.directories.push([path, mode]);
  }

  private packId(ref: PackRef): number {
    if (ref === ZERO_PACK) return ZERO_PACK_ID;
    const key = `${ref.backup}/${ref.name}`;
    let id = this.packIds.get(key);
    if (id === undefined) {
      id = this.packs.length;
      this.packs.push({ backup: ref.backup, name: ref.name });
      this.packIds.set(key, id);
    }
    return id;
  }

  async addFile(file: IndexedFile): Promise<void> {
    const path = Buffer.from(file.path, 'utf8');
    const record = Buffer.alloc(FILE_HEADER_BYTES + path.length + file.blocks.length * BLOCK_RECORD_BYTES);
    let at = record.writeUInt16LE(path.length, 0);
    at += path.copy(record, at);
    at = record.writeUInt32LE(file.mode >>> 0, at);
    at = record.writeDoubleLE(file.size, at);
    at = record.writeDoubleLE(file.mtime, at);
    at = record.writeUInt32LE(file.blocks.length, at);
    for (const b of file.blocks) {
      at = record.writeUInt32LE(this.packId(b.pack), at);
      at = record.writeUIntLE(b.offset, at, 6);
      at = record.writeUInt32LE(b.length, at);
      at += b.sha256.copy(record, at);
    }
    this.files.push([file.path, this.chunkNames.length, this.pendingBytes]);
    this.pending.push(record);
    this.pendingBytes += record.length;
    if (this.pendingBytes >= CHUNK_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const name = chunkName(this.chunkNames.length);
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.chunkNames.push(name);
    await this.storeChunk(name, bytes);
  }

  /** Writes the last chunk; returns the directory (the caller stores it). */
  async finish(): Promise<IndexDirectory> {
    await this.flush();
    return {
      format: INDEX_FORMAT,
      version: 1,
      blockSize: this.blockSize,
      packs: this.packs,
      chunks: this.chunkNames,
      files: this.files,
      directories: this.directories,
    };
  }
}

/** Decodes the file record at `offset` of a chunk. */
export function decodeFile(chunk: Buffer, offset: number, packs: readonly PackRef[], where: string): { file: IndexedFile; end: number } {
  try {
    const pathLength = chunk.readUInt16LE(offset);
    let at = offset + 2;
    const path = chunk.toString('utf8', at, at + pathLength);
    at += pathLength;
    const mode = chunk.readUInt32LE(at);
    const size = chunk.readDoubleLE(at + 4);
    const mtime = chunk.readDoubleLE(at + 12);
    const count = chunk.readUInt32LE(at + 20);
    at += 24;
    const blocks: BlockLocation[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const id = chunk.readUInt32LE(at);
      const pack = id === ZERO_PACK_ID ? ZERO_PACK : packs[id];
      if (!pack) throw new Error('pack reference out of range');
      blocks[i] = {
        pack,
        offset: chunk.readUIntLE(at + 4, 6),
        length: chunk.readUInt32LE(at + 10),
        sha256: Buffer.from(chunk.subarray(at + 14, at + 46)),
      };
      at += BLOCK_RECORD_BYTES;
    }
    return { file: { path, mode, size, mtime, blocks }, end: at };
  } catch (e) {
    throw new IntegrityError(`${where}: block index is damaged at offset ${offset} (${(e as Error).message})`);
  }
}

export function parseIndexDirectory(bytes: Buffer, where: string): IndexDirectory {
  let parsed: IndexDirectory;
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as IndexDirectory;
  } catch {
    throw new IntegrityError(`${where}: block index directory is not JSON`);
  }
  if (parsed.format !== INDEX_FORMAT || parsed.version !== 1) throw new IntegrityError(`${where}: not a block index directory (format ${parsed.format} ${parsed.version})`);
  return parsed;
}

/**
 * Reads an index by file path (for the next backup's comparison) or in order (for a restore),
 * holding the directory's path table and at most LRU_CHUNKS chunks.
 */
export class BlockIndexReader {
  private readonly byPath = new Map<string, readonly [number, number]>();
  private readonly cache = new Map<number, Buffer>();

  constructor(
    readonly directory: IndexDirectory,
    private readonly readChunk: (name: string) => Promise<Buffer>,
    private readonly where: string,
  ) {
    for (const [path, chunk, offset] of directory.files) this.byPath.set(path, [chunk, offset]);
  }

  private async chunk(n: number): Promise<Buffer> {
    const hit = this.cache.get(n);
    if (hit) {
      this.cache.delete(n); // most recently used goes last
      this.cache.set(n, hit);
      return hit;
    }
    const bytes = await this.readChunk(this.directory.chunks[n]);
    this.cache.set(n, bytes);
    if (this.cache.size > LRU_CHUNKS) this.cache.delete(this.cache.keys().next().value!);
    return bytes;
  }

  async lookup(path: string): Promise<IndexedFile | undefined> {
    const at = this.byPath.get(path);
    if (!at) return undefined;
    return decodeFile(await this.chunk(at[0]), at[1], this.directory.packs, this.where).file;
  }

  /** Every file, in index order, one chunk in memory at a time. */
  async *files(): AsyncGenerator<IndexedFile> {
    for (let n = 0; n < this.directory.chunks.length; n++) {
      const bytes = await this.readChunk(this.directory.chunks[n]);
      for (let at = 0; at < bytes.length; ) {
        const { file, end } = decodeFile(bytes, at, this.directory.packs, this.where);
        yield file;
        at = end;
      }
    }
  }
}
