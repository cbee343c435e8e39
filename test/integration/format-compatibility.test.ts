import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import { DecryptStream, EncryptStream } from '../../lib/core/crypto/segmented-aead';
import { fingerprintDatabaseAt, type DatabaseFingerprint } from '../../lib/core/engines/postgres/fingerprint';
import { ToolFailed } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import { MANIFEST_VERSION, sealManifest, type BackupManifest } from '../../lib/core/repository/manifest';
import { Repository } from '../../lib/core/repository/repository';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { ROOT, useTempDir, writeConfig } from '../harness/tidemark';

const FIXTURE = join(ROOT, 'test/fixtures/repository-v1');

/** `bytes` through one transform, collected. */
async function through(bytes: Buffer, transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([bytes]), transform, new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) }));
  return Buffer.concat(chunks);
}

describe('repository format', () => {
  const target = usePostgres();
  const tmp = useTempDir();

  it('a backup written by format version 1 still lists, verifies and restores', async () => {
    cpSync(join(FIXTURE, 'repo'), join(tmp.path, 'v1'), { recursive: true });
    const { backup, fingerprint } = JSON.parse(readFileSync(join(FIXTURE, 'fingerprint.json'), 'utf8')) as { backup: string; fingerprint: DatabaseFingerprint };
    const { config } = writeConfig(tmp.path, 'v1.yaml', {
      repository: `file://${tmp.path}/v1`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { shop: { engine: 'postgres', url: target.url('unused') } },
    });
    const listed = await runList(config, 'shop');
    expect(listed.backups.map((b) => [b.id, b.type])).toEqual([[backup, 'logical']]);
    expect((await runVerify(config, 'shop', { progress })).ok).toBe(true);
    await runRestore(config, 'shop', { to: target.url('from_v1'), progress });
    // The fixture's fingerprint was taken with md5 row hashes (fingerprint.ts before hashtext).
    expect(await fingerprintDatabaseAt(target.url('from_v1'), { hash: 'md5' })).toEqual(fingerprint);
  });

  describe('format version 2', () => {
    const source = usePostgres();
    let config: ReturnType<typeof writeConfig>['config'];
    let manifest: BackupManifest;
    let dataKey: Buffer;
    const repo = () => join(tmp.path, 'v2');

    beforeAll(async () => {
      await source.createDatabase('app');
      await loadSampleData(source.url('app'), { pgbenchScale: 1, toastMegabytes: 2 });
      config = writeConfig(tmp.path, 'v2.yaml', {
        repository: `file://${repo()}`,
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'postgres', url: source.url('app') } },
      }).config;
      const { id } = await runBackup(config, 'app', { type: 'logical', progress });
      const opened = await (await Repository.open(config)).openBackup('app', { id });
      manifest = opened.manifest;
      dataKey = opened.dataKey;
    }, 180_000);

    it('records typed details, and no plaintext checksum where node never saw the plaintext', () => {
      expect(manifest.version).toBe(MANIFEST_VERSION);
      expect(manifest.details).toMatchObject({ kind: 'pg-logical', database: 'app', format: 'pg_dump-custom', encoding: 'UTF8' });
      for (const object of manifest.objects) {
        expect(object).toMatchObject({ compression: 'zstd' });
        expect(object.plainSha256).toBeUndefined();
        expect(object.plainBytes).toBeGreaterThan(object.storedBytes);
      }
    });

    it('a damaged compressed stream under valid encryption is caught by zstd before pg_restore can commit', async () => {
      // The hardest case for the restore gate: every segment authentic, every byte of the dump
      // intact, only zstd's frame checksum (the last 4 bytes) wrong. pg_restore has all it needs.
      const dump = manifest.objects.find((o) => o.name === 'dump')!;
      const path = join(repo(), dump.key);
      const good = readFileSync(path);
      const compressed = await through(good, new DecryptStream(dataKey, 'test'));
      compressed[compressed.length - 1] ^= 0x01;
      const resealed = await through(compressed, new EncryptStream(dataKey));
      const edited: BackupManifest = {
        ...manifest,
        objects: manifest.objects.map((o) =>
          o === dump ? { ...o, storedBytes: resealed.length, storedSha256: createHash('sha256').update(resealed).digest('hex') } : o,
        ),
      };
      const manifestPath = join(repo(), 'app/backups', manifest.id, 'manifest.json');
      const goodManifest = readFileSync(manifestPath);
      // A database the restore does not create, so a failure cannot be undone by dropping it: only
      // the end-of-input gate (decompress-into.ts) keeps pg_restore --clean from committing.
      await runRestore(config, 'app', { to: target.url('kept'), progress });
      await target.sql("insert into pgbench_branches (bid, bbalance, filler) values (-1, 0, 'must survive')", 'kept');
      writeFileSync(path, resealed);
      writeFileSync(manifestPath, sealManifest(edited, dataKey));
      try {
        const verified = await runVerify(config, 'app', { progress });
        expect(verified.ok).toBe(false);
        expect(verified.backups[0].problems.join(' ')).toMatch(/zstd .*checksum/i);
        const error = await runRestore(config, 'app', { to: target.url('never_committed'), progress }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ToolFailed);
        expect((error as Error).message).toMatch(/^zstd failed .*checksum/i);
        expect(await target.sql("select count(*) from pg_database where datname = 'never_committed'")).toBe('0');
        const forced = await runRestore(config, 'app', { to: target.url('kept'), force: true, progress }).catch((e: unknown) => e);
        expect((forced as Error).message).toMatch(/^zstd failed .*checksum/i);
        expect(await target.sql('select filler from pgbench_branches where bid = -1', 'kept')).toBe('must survive');
      } finally {
        writeFileSync(path, good);
        writeFileSync(manifestPath, goodManifest);
      }
      await runRestore(config, 'app', { to: target.url('intact'), progress });
      expect(await fingerprintDatabaseAt(target.url('intact'))).toEqual(await fingerprintDatabaseAt(source.url('app')));
    });
  });
});
