import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { EncryptStream } from '../../lib/core/crypto/segmented-aead';
import { IntegrityError, ToolFailed } from '../../lib/core/errors';
import { decompressInto } from '../../lib/core/pipeline/decompress-into';
import type { StoredObject } from '../../lib/core/pipeline/stored-object';
import { FileStore } from '../../lib/core/repository/file-store';
import type { ObjectStore } from '../../lib/core/repository/storage';
import { useTempDir } from '../harness/tidemark';

/**
 * The end-of-input gate of restore (lib/core/pipeline/decompress-into.ts), with real zstd and a
 * consumer that, like pg_restore --single-transaction, "commits" when it sees end-of-input.
 *
 * The hard case is built on purpose: zstd's frame checksum (its last 4 bytes) is wrong and arrives
 * alone, half a second after everything else, in its own encryption segment. zstd 1.5 happens to
 * hold back the tail of its output until it has checked the checksum, and pg_restore would notice a
 * truncated archive; neither is a promise, so the consumer here commits on any end-of-input, and
 * only the gate stands between it and a commit.
 */
const SEGMENT_LOG2 = 12; // the smallest segment the format takes: 4 KiB

async function sealed(bytes: Buffer, dataKey: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([bytes]), new EncryptStream(dataKey, SEGMENT_LOG2), new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) }));
  return Buffer.concat(chunks);
}

/** Incompressible plaintext whose zstd frame is 4 bytes longer than a whole number of segments. */
function plaintextWithLoneChecksum(): { plain: Buffer; compressed: Buffer } {
  const zstd = (b: Buffer) => execFileSync('zstd', ['-q', '-c', '--check', '-1'], { input: b });
  let plain = randomBytes(300_000);
  const extra = (4 - (zstd(plain).length % (1 << SEGMENT_LOG2)) + (1 << SEGMENT_LOG2)) % (1 << SEGMENT_LOG2);
  plain = Buffer.concat([plain, randomBytes(extra)]); // stored raw: every plaintext byte adds one
  const compressed = zstd(plain);
  expect(compressed.length % (1 << SEGMENT_LOG2)).toBe(4);
  return { plain, compressed };
}

/** A store whose reads deliver the last 19 stored bytes late: the lone final segment (4 bytes and a 16-byte tag) has begun, so every segment before it can be decrypted and passed on, and only the checksum waits. */
function slowTail(store: ObjectStore): ObjectStore {
  return Object.assign(Object.create(store) as ObjectStore, {
    get: async (key: string) => {
      const bytes = await store.getBytes(key);
      return Readable.from(
        (async function* () {
          yield bytes.subarray(0, bytes.length - 19);
          await sleep(500);
          yield bytes.subarray(bytes.length - 19);
        })(),
      );
    },
  });
}

describe('restore: the consumer sees end-of-input only after every check passed', () => {
  const tmp = useTempDir();
  const dataKey = randomBytes(32);
  const { plain, compressed } = plaintextWithLoneChecksum();

  async function stored(name: string, bytes: Buffer): Promise<{ store: ObjectStore; object: StoredObject }> {
    const store = new FileStore(join(tmp.path, 'repo'));
    const body = await sealed(bytes, dataKey);
    await store.put(name, body);
    const object: StoredObject = {
      name,
      key: name,
      compression: 'zstd',
      plainBytes: plain.length,
      storedBytes: body.length,
      storedSha256: createHash('sha256').update(body).digest('hex'),
    };
    return { store: slowTail(store), object };
  }

  /** `cat > out`, then the "commit": a file that exists only if the consumer saw end-of-input. */
  function consumer(out: string) {
    return { command: 'sh', args: ['-c', 'cat > "$1" && echo committed > "$1.committed"', 'sh', out] };
  }

  it('an intact object reaches the consumer whole, and it commits', async () => {
    const { store, object } = await stored('intact', compressed);
    const out = join(tmp.path, 'intact.out');
    await decompressInto(store, object, { dataKey, label: 'intact' }, consumer(out));
    expect(readFileSync(out).equals(plain)).toBe(true);
    expect(existsSync(`${out}.committed`)).toBe(true);
  });

  it('a wrong frame checksum under valid encryption: zstd fails, and the consumer is killed before end-of-input', async () => {
    const damaged = Buffer.from(compressed);
    damaged[damaged.length - 1] ^= 0x01;
    const { store, object } = await stored('damaged', damaged);
    const out = join(tmp.path, 'damaged.out');
    const error = await decompressInto(store, object, { dataKey, label: 'damaged' }, consumer(out)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ToolFailed);
    expect((error as Error).message).toMatch(/^zstd failed .*checksum/i);
    expect(readFileSync(out).length).toBeGreaterThan(plain.length / 2); // it was well under way
    expect(existsSync(`${out}.committed`)).toBe(false);
  });

  it('stored bytes that differ from the manifest stop the consumer before end-of-input', async () => {
    const { store, object } = await stored('mislabelled', compressed);
    const out = join(tmp.path, 'mislabelled.out');
    const wrong = { ...object, storedSha256: '0'.repeat(64) };
    await expect(decompressInto(store, wrong, { dataKey, label: 'mislabelled' }, consumer(out))).rejects.toBeInstanceOf(IntegrityError);
    expect(existsSync(`${out}.committed`)).toBe(false);
  });

  it('an abort while the data flows kills the consumer before end-of-input', async () => {
    const { store, object } = await stored('aborted', compressed);
    const out = join(tmp.path, 'aborted.out');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('interrupted')), 200);
    await expect(decompressInto(store, object, { dataKey, label: 'aborted' }, consumer(out), { signal: controller.signal })).rejects.toThrow(
      'interrupted',
    );
    expect(existsSync(`${out}.committed`)).toBe(false);
  });
});
