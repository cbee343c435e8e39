import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { DecryptStream, EncryptStream } from '../../lib/core/crypto/segmented-aead';
import { IntegrityError } from '../../lib/core/errors';

const LOG2 = 12; // 4 KiB segments keep the search space small and the boundaries many
const SEGMENT = 1 << LOG2;

/** Splits a buffer at the given cut points, as a network or a pipe would. */
function chunked(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of [...points, data.length]) {
    if (p > at) out.push(data.subarray(at, p));
    at = Math.max(at, p);
  }
  return out;
}

async function run(stream: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const source = Readable.from(chunks);
  for await (const c of source.pipe(stream as unknown as NodeJS.WritableStream & NodeJS.ReadableStream)) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function encrypt(key: Buffer, plain: Buffer, cuts: number[] = []): Promise<Buffer> {
  return run(new EncryptStream(key, LOG2), chunked(plain, cuts));
}

async function decrypt(key: Buffer, stored: Buffer, cuts: number[] = []): Promise<Buffer> {
  const d = new DecryptStream(key, 'test object');
  const out: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    d.on('data', (c: Buffer) => out.push(c));
    d.on('end', resolve);
    d.on('error', reject);
  });
  for (const c of chunked(stored, cuts)) d.write(c);
  d.end();
  await done;
  return Buffer.concat(out);
}

// Sizes around segment boundaries matter most: 0, k*SEGMENT-1, k*SEGMENT, k*SEGMENT+1.
const plaintext = fc.oneof(
  fc.uint8Array({ maxLength: 3 * SEGMENT + 7 }),
  fc.integer({ min: 0, max: 3 }).chain((k) => fc.integer({ min: -1, max: 1 }).map((d) => new Uint8Array(Math.max(0, k * SEGMENT + d)).fill(7))),
);
const cuts = fc.array(fc.nat(), { maxLength: 6 });

describe('chunked AES-256-GCM stream', () => {
  const key = randomBytes(32);

  it('round-trips any plaintext, however the input and the stored bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(plaintext, cuts, cuts, async (p, encCuts, decCuts) => {
        const plain = Buffer.from(p);
        const stored = await encrypt(key, plain, encCuts);
        expect(stored.length).toBe(32 + plain.length + 16 * Math.max(1, Math.ceil(plain.length / SEGMENT)));
        expect((await decrypt(key, stored, decCuts)).equals(plain)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('fails when any single byte of the stored object is flipped', async () => {
    await fc.assert(
      fc.asyncProperty(plaintext, fc.nat(), fc.integer({ min: 1, max: 255 }), async (p, at, mask) => {
        const stored = await encrypt(key, Buffer.from(p));
        stored[at % stored.length] ^= mask;
        await expect(decrypt(key, stored)).rejects.toThrow(IntegrityError);
      }),
      { numRuns: 150 },
    );
  });

  it('fails when the stored object is truncated anywhere or extended', async () => {
    await fc.assert(
      fc.asyncProperty(plaintext, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 40 }), async (p, cut, extra) => {
        const stored = await encrypt(key, Buffer.from(p));
        await expect(decrypt(key, stored.subarray(0, cut % stored.length))).rejects.toThrow(IntegrityError);
        await expect(decrypt(key, Buffer.concat([stored, extra]))).rejects.toThrow(IntegrityError);
      }),
      { numRuns: 100 },
    );
  });

  it('fails with another data key, and never releases unauthenticated plaintext', async () => {
    const stored = await encrypt(key, randomBytes(3 * SEGMENT));
    const released: Buffer[] = [];
    const d = new DecryptStream(randomBytes(32), 'test object');
    d.on('data', (c: Buffer) => released.push(c));
    const failed = new Promise((resolve) => d.on('error', resolve));
    d.end(stored);
    await expect(failed).resolves.toBeInstanceOf(IntegrityError);
    expect(released).toHaveLength(0);
  });

  it('fails when segments are reordered', async () => {
    const stored = await encrypt(key, randomBytes(3 * SEGMENT));
    const seg = SEGMENT + 16;
    const header = stored.subarray(0, 32);
    const [a, b, c] = [0, 1, 2].map((i) => stored.subarray(32 + i * seg, 32 + (i + 1) * seg));
    await expect(decrypt(key, Buffer.concat([header, b, a, c]))).rejects.toThrow(/segment 0 failed authentication/);
  });

  describe('binding (extra HKDF info)', () => {
    const encryptBound = (plain: Buffer, binding?: Buffer) => run(new EncryptStream(key, LOG2, binding), [plain]);
    const decryptBound = (stored: Buffer, binding?: Buffer) => run(new DecryptStream(key, 'bound object', binding), [stored]);

    it('round-trips with the same binding and fails with any other, or none', async () => {
      await fc.assert(
        fc.asyncProperty(plaintext, fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.uint8Array({ minLength: 1, maxLength: 64 }), async (p, b1, b2) => {
          const plain = Buffer.from(p);
          const stored = await encryptBound(plain, Buffer.from(b1));
          expect((await decryptBound(stored, Buffer.from(b1))).equals(plain)).toBe(true);
          await expect(decryptBound(stored)).rejects.toThrow(/bound object: segment 0 failed authentication/);
          if (!Buffer.from(b1).equals(Buffer.from(b2))) await expect(decryptBound(stored, Buffer.from(b2))).rejects.toThrow(IntegrityError);
        }),
        { numRuns: 60 },
      );
    });

    it('an empty or absent binding derives the key backups were always written with', async () => {
      const plain = randomBytes(SEGMENT + 5);
      const unbound = await encrypt(key, plain);
      expect((await decryptBound(unbound, Buffer.alloc(0))).equals(plain)).toBe(true);
      expect((await decrypt(key, await encryptBound(plain, Buffer.alloc(0)))).equals(plain)).toBe(true);
      await expect(decrypt(key, await encryptBound(plain, Buffer.from('x')))).rejects.toThrow(IntegrityError);
    });
  });
});
