import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { parseBackupLabel, parseManifestWalRange } from '../../lib/core/engines/postgres/physical/backup-label';
import { BlockIndexReader, BlockIndexWriter, CHUNK_BYTES, ZERO_PACK, type IndexedFile } from '../../lib/core/engines/postgres/physical/block-index';
import { chooseParent, rangeOf, splitBlocks } from '../../lib/core/engines/postgres/physical/backup';
import { spread } from '../../lib/core/engines/postgres/physical/restore';
import { pageChecksum, pageChecksumIsSimd, pageChecksumJs, pageLsn, parseLsn, relationSegment, verifyPage } from '../../lib/core/engines/postgres/physical/page-checksum';
import { simdChecksumSupported } from '../../lib/core/engines/postgres/physical/page-checksum-simd';
import { walSegmentStart, zeroStaleWalPages, WAL_PAGE_SIZE } from '../../lib/core/engines/postgres/physical/wal-pages';
import type { BackupManifest } from '../../lib/core/repository/manifest';

const sha = (s: string) => createHash('sha256').update(s).digest();

const fileArb = fc.record({
  path: fc.stringMatching(/^(base\/\d{1,5}\/\d{1,6}|global\/\d{1,5}|pg_wal\/[0-9A-F]{24}|[a-z_]{1,20})$/),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  size: fc.nat({ max: 2 ** 40 }),
  mtime: fc.integer({ min: 0, max: 2 ** 32 }),
  blocks: fc.array(
    fc.record({
      backup: fc.constantFrom('b1', 'b2', 'b3'),
      pack: fc.integer({ min: 1, max: 4 }),
      offset: fc.nat({ max: 2 ** 47 }),
      length: fc.integer({ min: 1, max: 65536 }),
      seed: fc.string(),
    }),
    { maxLength: 40 },
  ),
});

describe('the block index', () => {
  it('gives back every file, by path and in order, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fileArb, { selector: (f) => f.path, maxLength: 30 }), async (raw) => {
        const files: IndexedFile[] = raw.map((f) => ({
          path: f.path,
          mode: f.mode,
          size: f.size,
          mtime: f.mtime,
          blocks: f.blocks.map((b) => ({ pack: { backup: b.backup, name: `pack-${b.pack}` }, offset: b.offset, length: b.length, sha256: sha(b.seed) })),
        }));
        const stored = new Map<string, Buffer>();
        const writer = new BlockIndexWriter(65536, async (name, bytes) => void stored.set(name, bytes));
        writer.addDirectory('base', 0o700);
        for (const f of files) await writer.addFile(f);
        const directory = JSON.parse(JSON.stringify(await writer.finish()));
        const reader = new BlockIndexReader(directory, async (name) => stored.get(name)!, 'test');
        const plain = (f: IndexedFile) => ({ ...f, blocks: f.blocks.map((b) => ({ ...b, pack: { ...b.pack }, sha256: b.sha256.toString('hex') })) });
        const inOrder: IndexedFile[] = [];
        for await (const f of reader.files()) inOrder.push(f);
        expect(inOrder.map(plain)).toEqual(files.map(plain));
        for (const f of [...files].reverse()) expect(plain((await reader.lookup(f.path))!)).toEqual(plain(f));
        expect(await reader.lookup('no/such/file')).toBeUndefined();
        expect(directory.directories).toEqual([['base', 0o700]]);
      }),
      { numRuns: 50 },
    );
  });

  it('records all-zero blocks as stored nowhere', async () => {
    const stored = new Map<string, Buffer>();
    const writer = new BlockIndexWriter(65536, async (name, bytes) => void stored.set(name, bytes));
    const real = { pack: { backup: 'b', name: 'pack-00001' }, offset: 0, length: 65536, sha256: sha('x') };
    await writer.addFile({ path: 'pg_wal/000000010000000000000001', mode: 0o600, size: 131072, mtime: 0, blocks: [real, { ...real, pack: ZERO_PACK }] });
    const directory = await writer.finish();
    expect(directory.packs).toEqual([real.pack]); // the zeros need no pack
    const file = await new BlockIndexReader(directory, async (name) => stored.get(name)!, 'test').lookup('pg_wal/000000010000000000000001');
    expect(file!.blocks.map((b) => b.pack)).toEqual([real.pack, ZERO_PACK]);
    expect(file!.blocks[1].pack).toBe(ZERO_PACK);
  });

  it('splits into chunks of about CHUNK_BYTES, never splitting a file record', async () => {
    const stored = new Map<string, Buffer>();
    const writer = new BlockIndexWriter(65536, async (name, bytes) => void stored.set(name, bytes));
    const blocks = Array.from({ length: 16384 }, (_, i) => ({ pack: { backup: 'b', name: 'pack-1' }, offset: i * 65536, length: 65536, sha256: sha(String(i)) }));
    for (let i = 0; i < 12; i++) await writer.addFile({ path: `base/1/${1000 + i}`, mode: 0o600, size: 2 ** 30, mtime: 0, blocks });
    const directory = await writer.finish();
    expect(directory.chunks.length).toBeGreaterThan(1);
    for (const bytes of stored.values()) expect(bytes.length).toBeLessThan(CHUNK_BYTES + 16384 * 46 + 100);
    const reader = new BlockIndexReader(directory, async (name) => stored.get(name)!, 'test');
    expect((await reader.lookup('base/1/1011'))!.blocks[16383].offset).toBe(16383 * 65536);
  });
});

describe('cutting a file into blocks', () => {
  async function* fromArray(chunks: Buffer[]): AsyncGenerator<Buffer> {
    for (const c of chunks) yield c;
  }

  it('gives full blocks then one shorter, equal to the input whatever the chunking, as views of the chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), fc.integer({ min: 1, max: 64 }), async (parts, size) => {
        const chunks = parts.map((p) => Buffer.from(p));
        const whole = Buffer.concat(chunks);
        const blocks: Buffer[][] = [];
        for await (const b of splitBlocks(fromArray(chunks), size)) blocks.push(b);
        expect(Buffer.concat(blocks.flat()).equals(whole)).toBe(true);
        const lengths = blocks.map((b) => b.reduce((n, p) => n + p.length, 0));
        expect(lengths.slice(0, -1).every((n) => n === size)).toBe(true);
        if (blocks.length > 0) expect(lengths[lengths.length - 1]).toBeGreaterThan(0);
        expect(blocks.length).toBe(Math.ceil(whole.length / size));
        // No copies: every piece is a view of an input chunk's memory, and none is empty.
        const memories = new Set<ArrayBufferLike>(chunks.map((c) => c.buffer));
        expect(blocks.flat().every((p) => p.length > 0 && memories.has(p.buffer))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('reads any range of a block in pieces: a view inside one piece, a copy across two', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { minLength: 1, maxLength: 6 }), fc.nat(), fc.nat(), (parts, a, b) => {
        const pieces = parts.map((p) => Buffer.from(p));
        const whole = Buffer.concat(pieces);
        const [start, end] = [a % (whole.length + 1), b % (whole.length + 1)].sort((x, y) => x - y);
        const scratch = Buffer.alloc(whole.length);
        const got = rangeOf(pieces, start, end, scratch);
        expect(got.equals(whole.subarray(start, end))).toBe(true);
      }),
    );
    const pieces = [Buffer.from('abcd'), Buffer.from('efgh')];
    expect(rangeOf(pieces, 1, 3, Buffer.alloc(8)).buffer).toBe(pieces[0].buffer);
    const scratch = Buffer.alloc(8);
    expect(rangeOf(pieces, 2, 6, scratch).toString()).toBe('cdef');
  });
});

describe('the order packs are restored in', () => {
  it('takes every pack once, workers starting far apart and each going forward from its start', () => {
    fc.assert(
      fc.property(fc.nat({ max: 200 }), fc.integer({ min: 1, max: 8 }), (n, lanes) => {
        const packs = Array.from({ length: n }, (_, i) => i);
        const order = spread(packs, lanes);
        expect([...order].sort((a, b) => a - b)).toEqual(packs);
        const per = Math.ceil(n / lanes);
        const first = n ? order.slice(0, Math.ceil(n / per)) : [];
        first.slice(1).forEach((p, i) => expect(p - first[i]).toBe(per));
        for (let lane = 0; lane < lanes; lane++) {
          const taken = order.filter((p) => Math.floor(p / per) === lane);
          expect(taken).toEqual([...taken].sort((a, b) => a - b));
        }
      }),
    );
  });
});

describe('page checksums', () => {
  it('accepts all-zero pages, skips pages newer than the backup, and tells a flipped bit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8192, maxLength: 8192 }), fc.nat({ max: 2 ** 31 }), fc.integer({ min: 24, max: 8191 }), (bytes, blockNo, flip) => {
        const page = Buffer.from(bytes);
        page.writeUInt32LE(0, 0); // pd_lsn 0/xxxx, older than the backup below
        const sum = pageChecksum(page, blockNo);
        page.writeUInt16LE(sum, 8);
        expect(sum).toBeGreaterThanOrEqual(1);
        expect(sum).toBeLessThanOrEqual(65535);
        expect(verifyPage(page, blockNo, parseLsn('1/0'))).toBe('ok');
        page[flip] ^= 0x01;
        expect(verifyPage(page, blockNo, parseLsn('1/0'))).toBe('bad');
        page.writeUInt32LE(2, 0); // now its LSN is past the backup's start
        expect(verifyPage(page, blockNo, parseLsn('1/0'))).toBe('newer-than-backup');
      }),
      // Fixed seed: a 16-bit checksum misses one flip in 65,535, and a test must not flake.
      { numRuns: 50, seed: 20261201 },
    );
    expect(verifyPage(new Uint8Array(8192), 7, 0)).toBe('new');
  });

  it('computes the same checksum as WebAssembly SIMD as in plain JavaScript, wherever the page lies in memory', () => {
    expect(simdChecksumSupported()).toBe(true);
    expect(pageChecksumIsSimd).toBe(true); // Node ≥ 20 has WebAssembly SIMD: the fast path is the one in use
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8192 + 15, maxLength: 8192 + 15 }), fc.nat({ max: 15 }), fc.nat({ max: 2 ** 32 - 1 }), (bytes, shift, blockNo) => {
        const page = bytes.subarray(shift, shift + 8192); // any alignment, as pieces of tar chunks are
        const before = Buffer.from(page);
        expect(pageChecksum(page, blockNo)).toBe(pageChecksumJs(page, blockNo));
        expect(Buffer.from(page).equals(before)).toBe(true); // pd_checksum is zeroed in a copy only
      }),
      { numRuns: 300 },
    );
    // Lanes and rows are told apart: one word changed anywhere moves the checksum (with these seeds).
    const page = Buffer.alloc(8192, 0x5a);
    const sums = new Set<number>();
    for (let word = 3; word < 2048; word += 97) {
      const copy = Buffer.from(page);
      copy.writeUInt32LE(0xdeadbeef, word * 4);
      sums.add(pageChecksum(copy, 1));
      expect(pageChecksum(copy, 1)).toBe(pageChecksumJs(copy, 1));
    }
    expect(sums.size).toBeGreaterThan(15);
    expect(() => pageChecksum(page.subarray(0, 8191), 1)).toThrow(RangeError);
    expect(() => pageChecksumJs(page.subarray(0, 8191), 1)).toThrow(RangeError);
  });

  it('reads pd_lsn as xlogid << 32 | xrecoff', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 21 - 1 }), fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 7 }), (hi, lo, shift) => {
        const page = Buffer.alloc(8192 + 8);
        page.writeUInt32LE(hi, shift);
        page.writeUInt32LE(lo, shift + 4);
        expect(pageLsn(page.subarray(shift))).toBe(hi * 2 ** 32 + lo);
      }),
    );
  });

  it('knows relation files and their segment numbers', () => {
    expect(relationSegment('base/5/16384')).toBe(0);
    expect(relationSegment('base/5/16384.3')).toBe(3);
    expect(relationSegment('base/5/16384_vm')).toBe(0);
    expect(relationSegment('global/1262')).toBe(0);
    expect(relationSegment('base/5/pg_filenode.map')).toBeUndefined();
    expect(relationSegment('base/5/PG_VERSION')).toBeUndefined();
    expect(relationSegment('pg_wal/000000010000000000000002')).toBeUndefined();
  });
});

describe('WAL pages a backup does not need', () => {
  const segment = 16 << 20;
  const page = (addr: number, fill: number) => {
    const p = Buffer.alloc(WAL_PAGE_SIZE, fill);
    p.writeUInt32LE(addr % 2 ** 32, 8);
    p.writeUInt32LE(Math.floor(addr / 2 ** 32), 12);
    return p;
  };

  it('zeros stale pages and pages before the start, keeping the first page and everything from the start on', () => {
    const start = walSegmentStart('pg_wal/000000010000000100000003', segment)!;
    expect(start).toBe(2 ** 32 + 3 * segment);
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 8 }), (stale, startPage) => {
        const block = Buffer.concat(stale.map((s, i) => page(s ? start - segment + i * WAL_PAGE_SIZE : start + i * WAL_PAGE_SIZE, 0xab)));
        const startLsn = start + startPage * WAL_PAGE_SIZE + 100;
        zeroStaleWalPages(block, start, 0, startLsn);
        stale.forEach((s, i) => {
          const zero = block.subarray(i * WAL_PAGE_SIZE, (i + 1) * WAL_PAGE_SIZE).every((b) => b === 0);
          expect(zero).toBe(s || (i > 0 && i < startPage));
        });
      }),
    );
    expect(walSegmentStart('pg_wal/00000002.history', 100)).toBeUndefined();
  });
});

describe('backup labels and chains', () => {
  it('reads the start and stop of a base backup', () => {
    expect(parseBackupLabel('START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n')).toEqual({
      startLsn: '0/2000028',
      timeline: 1,
    });
    const tail = '"WAL-Ranges": [\n{ "Timeline": 2, "Start-LSN": "0/2000028", "End-LSN": "0/2000138" }\n],\n"Manifest-Checksum": "x"}';
    expect(parseManifestWalRange(tail)).toEqual({ timeline: 2, stopLsn: '0/2000138' });
  });

  it('a diff builds on the newest full, an incr on the newest physical backup', () => {
    const m = (id: string, type: string, kind = 'pg-physical') => ({ id, type, details: { kind } }) as unknown as BackupManifest;
    const backups = [m('1', 'full'), m('2', 'incr'), m('3', 'full'), m('4', 'diff'), m('5', 'logical', 'pg-logical')];
    expect(chooseParent(backups, 'diff')?.id).toBe('3');
    expect(chooseParent(backups, 'incr')?.id).toBe('4');
    expect(chooseParent(backups, 'full')).toBeUndefined();
    expect(chooseParent([m('5', 'logical', 'pg-logical')], 'incr')).toBeUndefined();
  });
});
