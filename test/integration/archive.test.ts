import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { EncryptionKeyError, IntegrityError, StorageError } from '../../lib/core/errors';
import { StreamArchive } from '../../lib/core/repository/archive';
import { FileStore } from '../../lib/core/repository/file-store';
import { openStore } from '../../lib/core/repository/open-store';
import { Repository } from '../../lib/core/repository/repository';
import { useS3 } from '../harness/s3';
import { TEST_KEY, useTempDir } from '../harness/tidemark';

const compression = { level: 1, threads: 1 };
const keys = new LocalKeyProvider(TEST_KEY, 'the test key');

/** A WAL-like file: mostly zeros after a written prefix, as pg_receivewal pads its segments. */
function segmentLike(size: number, written: number): Buffer {
  const b = Buffer.alloc(size);
  randomBytes(written).copy(b);
  return b;
}

async function readAll(archive: StreamArchive, name: string): Promise<Buffer> {
  const { plaintext } = await archive.open(name);
  const chunks: Buffer[] = [];
  for await (const c of plaintext) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('continuous archive objects (repository/archive.ts)', () => {
  const tmp = useTempDir();
  let repoDir: string;
  let archive: StreamArchive;
  const objectPath = (name: string) => join(repoDir, 'app/wal', ...name.split('/'));

  beforeAll(() => {
    repoDir = join(tmp.path, 'repo');
    archive = new StreamArchive(new Repository(new FileStore(repoDir), keys), 'app', 'wal');
  });

  it('round-trips files and bytes of any size, with the header and attributes as written', async () => {
    const writer = await archive.writer({ epoch: 'new' });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 << 20 }), fc.boolean(), async (size, asFile) => {
        const data = segmentLike(size, Math.min(size, 200_000));
        const name = `00000001/object-${n++}`;
        if (asFile) {
          const path = join(tmp.path, `in-${n}`);
          writeFileSync(path, data);
          await writer.writeFile(name, path, { compression, attributes: { lsn: '0/1000', n } });
        } else {
          await writer.writeBytes(name, data, { compression, attributes: { lsn: '0/1000', n } });
        }
        expect((await readAll(archive, name)).equals(data)).toBe(true);
        expect(await archive.readHeader(name)).toEqual({ epoch: writer.epoch, compression: 'zstd', plainBytes: size, attributes: { lsn: '0/1000', n } });
      }),
      { numRuns: 12 },
    );
    // Zeros compress away: a 16 MiB segment with 200 kB written stores little more than 200 kB.
    const stored = await writer.writeBytes('00000001/padded', segmentLike(16 << 20, 200_000), { compression });
    expect(stored.storedBytes).toBeLessThan(260_000);
  });

  it('never overwrites: a second write of the same name is refused and the first object stays', async () => {
    const writer = await archive.writer({ epoch: 'newest' });
    const first = randomBytes(1000);
    await writer.writeBytes('00000001/once', first, { compression });
    await expect(writer.writeBytes('00000001/once', randomBytes(1000), { compression })).rejects.toThrow(
      expect.objectContaining({ code: 'ObjectExists' }) as StorageError,
    );
    expect((await readAll(archive, '00000001/once')).equals(first)).toBe(true);
    expect(await archive.plaintextSha256('00000001/once')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reuses the newest key epoch on request and creates one per streamer run', async () => {
    const before = await archive.epochs();
    const reused = await archive.writer({ epoch: 'newest' });
    expect(reused.epoch).toBe(before[before.length - 1]);
    const fresh = await archive.writer({ epoch: 'new' });
    expect(await archive.epochs()).toEqual([...before, fresh.epoch]);
    const stored = JSON.parse(readFileSync(join(repoDir, 'app/wal/keys', `${fresh.epoch}.json`), 'utf8'));
    expect(stored).toMatchObject({ format: 'tidemark.archive-key', version: 1, epoch: fresh.epoch, context: { tidemark: 'archive', source: 'app', epoch: fresh.epoch } });
    expect(JSON.stringify(stored)).not.toContain('plaintext');
    // A reader in another process unwraps each epoch's key once.
    const other = new StreamArchive(new Repository(new FileStore(repoDir), keys), 'app', 'wal');
    await fresh.writeBytes('00000001/fresh', Buffer.from('x'), { compression });
    expect((await readAll(other, '00000001/fresh')).toString()).toBe('x');
  });

  it('lists objects without the key epochs', async () => {
    const names = (await archive.list()).map((o) => o.name);
    expect(names).toContain('00000001/once');
    expect(names.some((n) => n.startsWith('keys'))).toBe(false);
  });

  describe('fails authentication, naming the object, when', () => {
    let writer: Awaited<ReturnType<StreamArchive['writer']>>;
    beforeAll(async () => {
      writer = await archive.writer({ epoch: 'new' });
      await writer.writeBytes('00000001/a', randomBytes(3 << 20), { compression });
      await writer.writeBytes('00000001/b', randomBytes(3 << 20), { compression });
    });

    it('an object is renamed (moved under another name)', async () => {
      renameSync(objectPath('00000001/a'), objectPath('00000001/renamed'));
      await expect(readAll(archive, '00000001/renamed')).rejects.toThrow(/archive object app\/wal\/00000001\/renamed: segment 0 failed authentication/);
      renameSync(objectPath('00000001/renamed'), objectPath('00000001/a'));
      expect((await readAll(archive, '00000001/a')).length).toBe(3 << 20);
    });

    it('two objects are swapped', async () => {
      copyFileSync(objectPath('00000001/a'), objectPath('00000001/swap'));
      copyFileSync(objectPath('00000001/b'), objectPath('00000001/a'));
      await expect(readAll(archive, '00000001/a')).rejects.toThrow(IntegrityError);
      copyFileSync(objectPath('00000001/swap'), objectPath('00000001/a'));
    });

    it('the header is edited, even to a value of the same length', async () => {
      const original = readFileSync(objectPath('00000001/b'));
      const edited = Buffer.from(original.toString('latin1').replace(`"plainBytes":${3 << 20}`, `"plainBytes":${(3 << 20) - 1}`), 'latin1');
      expect(edited.length).toBe(original.length);
      writeFileSync(objectPath('00000001/b'), edited);
      await expect(readAll(archive, '00000001/b')).rejects.toThrow(/archive object app\/wal\/00000001\/b: segment 0 failed authentication/);
      writeFileSync(objectPath('00000001/b'), original);
    });

    it('an object is truncated or has a flipped byte', async () => {
      const original = readFileSync(objectPath('00000001/b'));
      truncateSync(objectPath('00000001/b'), original.length - 10);
      await expect(readAll(archive, '00000001/b')).rejects.toThrow(/archive object app\/wal\/00000001\/b: .*(truncated|authentication)/);
      const flipped = Buffer.from(original);
      flipped[flipped.length - 1000] ^= 1;
      writeFileSync(objectPath('00000001/b'), flipped);
      await expect(readAll(archive, '00000001/b')).rejects.toThrow(IntegrityError);
      writeFileSync(objectPath('00000001/b'), original);
      expect((await readAll(archive, '00000001/b')).length).toBe(3 << 20);
    });

    it('the key epoch is missing, or another key opens the repository', async () => {
      const wrong = new StreamArchive(new Repository(new FileStore(repoDir), new LocalKeyProvider('another-key-0123456789abcdefghijklmnop', 'another key')), 'app', 'wal');
      await expect(readAll(wrong, '00000001/b')).rejects.toThrow(EncryptionKeyError);
      const moved = join(tmp.path, 'moved-epoch.json');
      renameSync(join(repoDir, 'app/wal/keys', `${writer.epoch}.json`), moved);
      const fresh = new StreamArchive(new Repository(new FileStore(repoDir), keys), 'app', 'wal');
      await expect(readAll(fresh, '00000001/b')).rejects.toThrow(/archive key epoch .* is missing/);
      renameSync(moved, join(repoDir, 'app/wal/keys', `${writer.epoch}.json`));
    });
  });

  it('readToFile writes the whole verified file or nothing', async () => {
    const writer = await archive.writer({ epoch: 'newest' });
    const data = segmentLike(1 << 20, 50_000);
    await writer.writeBytes('00000001/to-file', data, { compression });
    mkdirSync(join(tmp.path, 'out'), { recursive: true });
    await archive.readToFile('00000001/to-file', join(tmp.path, 'out/seg'));
    expect(readFileSync(join(tmp.path, 'out/seg')).equals(data)).toBe(true);
    const original = readFileSync(objectPath('00000001/to-file'));
    writeFileSync(objectPath('00000001/to-file'), original.subarray(0, original.length - 1));
    await expect(archive.readToFile('00000001/to-file', join(tmp.path, 'out/broken'))).rejects.toThrow(IntegrityError);
    expect(() => readFileSync(join(tmp.path, 'out/broken'))).toThrow();
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(join(tmp.path, 'out'))).toEqual(['seg']);
  });
});

describe('continuous archive objects on S3', () => {
  const s3 = useS3();

  it('round-trips, refuses overwrites without hanging, and binds objects to their keys', async () => {
    const repository = new Repository(openStore(s3.repository('archive')), keys);
    const archive = new StreamArchive(repository, 'app', 'binlog');
    const writer = await archive.writer({ epoch: 'new' });
    const data = randomBytes(5 << 20);
    await writer.writeBytes('mysql-bin.000001', data, { compression });
    expect((await readAll(archive, 'mysql-bin.000001')).equals(data)).toBe(true);
    await expect(writer.writeBytes('mysql-bin.000001', data, { compression })).rejects.toThrow(StorageError);
    expect((await archive.list()).map((o) => o.name)).toEqual(['mysql-bin.000001']);
  });
});
