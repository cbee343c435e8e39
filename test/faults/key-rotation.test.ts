import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient, type DecryptCommandInput, type GenerateDataKeyCommandInput } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { runBackup } from '../../lib/core/commands/backup';
import { runRestore } from '../../lib/core/commands/restore';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { openEncryptionKeys } from '../../lib/core/crypto/open-key-provider';
import { WalArchive } from '../../lib/core/engines/postgres/wal/wal-archive';
import { pushWalFile } from '../../lib/core/engines/postgres/wal/wal-push';
import { EncryptionKeyError, SecretError, TidemarkError } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';
import { FakeKms } from '../harness/fake-kms';
import { usePostgres } from '../harness/postgres';
import { useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Issue 11, keys: `encryption.key` changes (a local secret replaced; a KMS alias moved to a new
 * key) and the backups made before still verify and restore — with the old key named in
 * `encryption.previousKeys` — while no stored object is rewritten (the repository is append-only).
 * A wrong key and a missing key fail with one line each and change nothing.
 */
jest.setTimeout(120_000);

const KEYS = {
  TIDEMARK_ROTATION_OLD: 'the-old-local-secret-0123456789abcdefghijkl',
  TIDEMARK_ROTATION_NEW: 'the-new-local-secret-0123456789abcdefghijkl',
  TIDEMARK_ROTATION_WRONG: 'a-wrong-local-secret-0123456789abcdefghijkl',
};
Object.assign(process.env, KEYS);
const UNSET = 'TIDEMARK_ROTATION_UNSET';
delete process.env[UNSET];

/** SHA-256 of every file under `dir`, by relative path: what "nothing stored changed" is checked against. */
function hashAll(dir: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(join(dir, rel)).isDirectory()) {
      for (const [k, v] of hashAll(dir, rel)) out.set(k, v);
    } else {
      out.set(rel, createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex'));
    }
  }
  return out;
}

/** Every object of `before` is still there with the same bytes (new ones may have been added). */
function expectUnchanged(before: Map<string, string>, after: Map<string, string>): void {
  expect(Object.fromEntries([...before.keys()].map((k) => [k, after.get(k)]))).toEqual(Object.fromEntries(before));
}

/** A rejection that is a one-line TidemarkError of `type`; returns its message. */
async function oneLine(promise: Promise<unknown>, type: typeof TidemarkError): Promise<string> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(type);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('key rotation of a local secret', () => {
  const pg = usePostgres({ settings: { wal_level: 'replica' } });
  const tmp = useTempDir('tidemark-keys-');
  const repo = () => join(tmp.path, 'repo');
  const configWith = (name: string, encryption: { key: string; previousKeys?: string[] }): TidemarkConfig =>
    writeConfig(tmp.path, `${name}.yaml`, {
      repository: `file://${repo()}`,
      encryption,
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).config;
  let old: TidemarkConfig;
  let rotated: TidemarkConfig;
  let newOnly: TidemarkConfig;
  const made: { old: string; rotated: string } = { old: '', rotated: '' };
  const segments: string[] = [];

  const count = (db: string) => pg.sql('select count(*) from t', db);
  const pushSegment = async (config: TidemarkConfig) => {
    await pg.sql('insert into t select g from generate_series(1, 100) g', 'app');
    const segment = await pg.sql('select pg_walfile_name(pg_switch_wal())', 'app');
    await pushWalFile(await Repository.open(config), 'app', join(pg.dataDir, 'pg_wal', segment), config.compression);
    segments.push(segment);
  };

  beforeAll(async () => {
    await pg.createDatabase('app');
    await pg.sql('create table t (id int); insert into t select g from generate_series(1, 1000) g', 'app');
    old = configWith('old', { key: 'env:TIDEMARK_ROTATION_OLD' });
    rotated = configWith('rotated', { key: 'env:TIDEMARK_ROTATION_NEW', previousKeys: ['env:TIDEMARK_ROTATION_OLD'] });
    newOnly = configWith('new-only', { key: 'env:TIDEMARK_ROTATION_NEW' });
    made.old = (await runBackup(old, 'app', { type: 'logical', progress })).id;
    await pushSegment(old);
  }, 180_000);

  it('after encryption.key changes, what was made before still verifies and restores, and nothing stored is rewritten', async () => {
    const before = hashAll(repo());
    await pg.sql('insert into t select g from generate_series(1, 500) g', 'app');

    // The new key alone is refused before anything is written, and says what to do.
    expect(await oneLine(runBackup(newOnly, 'app', { type: 'logical', progress }), EncryptionKeyError)).toMatch(
      /^wrong encryption key: the key from env:TIDEMARK_ROTATION_NEW is not the key this repository \(.*\) was created with \(after a rotation, name the old key in encryption\.previousKeys\)$/,
    );
    expect(hashAll(repo())).toEqual(before);

    made.rotated = (await runBackup(rotated, 'app', { type: 'logical', progress })).id;
    await pushSegment(rotated);
    expectUnchanged(before, hashAll(repo()));

    // New data keys are wrapped by the new key: the new backup and the new WAL open with it alone.
    const archive = new WalArchive(await Repository.open(newOnly), 'app');
    const [oldEpoch, newEpoch] = await Promise.all(segments.map(async (s) => (await archive.objects.readHeader(`00000001/${s}`)).epoch));
    expect(newEpoch).not.toBe(oldEpoch); // wal-push began a new epoch rather than reuse the old key's
    await archive.objects.plaintextSha256(`00000001/${segments[1]}`);
    await runRestore(newOnly, 'app', { to: pg.url('new_only'), backup: made.rotated, progress });
    expect(await count('new_only')).toBe('1600');
    // …and what was made before needs the old key, named as such.
    expect(await oneLine(runRestore(newOnly, 'app', { to: pg.url('refused'), backup: made.old, progress }), EncryptionKeyError)).toBe(
      `backup ${made.old}: wrong encryption key: the key from env:TIDEMARK_ROTATION_NEW does not unlock this data`,
    );
    expect(await pg.sql("select count(*) from pg_database where datname = 'refused'")).toBe('0');

    // With the old key in encryption.previousKeys, everything verifies and restores.
    const verified = await runVerify(rotated, 'app', { progress });
    expect(verified.backups.map((b) => [b.id, b.ok])).toEqual([
      [made.old, true],
      [made.rotated, true],
    ]);
    expect(verified.archive?.problems.filter((p) => segments.some((s) => p.includes(s)))).toEqual([]);
    await runRestore(rotated, 'app', { to: pg.url('from_old'), backup: made.old, progress });
    expect(await count('from_old')).toBe('1000');
    expectUnchanged(before, hashAll(repo()));
  });

  it('a wrong key and a missing key: one line each, and nothing changed', async () => {
    const before = hashAll(repo());
    const wrong = configWith('wrong', { key: 'env:TIDEMARK_ROTATION_WRONG' });
    expect(await oneLine(runBackup(wrong, 'app', { type: 'logical', progress }), EncryptionKeyError)).toMatch(
      /^wrong encryption key: the key from env:TIDEMARK_ROTATION_WRONG is not the key this repository/,
    );
    // A wrong key says nothing about the backups' health: verify stops at the first, rather than report each damaged.
    expect(await oneLine(runVerify(wrong, 'app', { progress }), EncryptionKeyError)).toBe(
      `backup ${made.old}: wrong encryption key: the key from env:TIDEMARK_ROTATION_WRONG does not unlock this data`,
    );
    expect(await oneLine(runRestore(wrong, 'app', { to: pg.url('wrong'), backup: made.rotated, progress }), EncryptionKeyError)).toMatch(/wrong encryption key/);
    // Neither the current key nor a previous one: both are named.
    const neither = configWith('neither', { key: 'env:TIDEMARK_ROTATION_WRONG', previousKeys: ['env:TIDEMARK_ROTATION_NEW'] });
    expect(await oneLine(runRestore(neither, 'app', { to: pg.url('wrong'), backup: made.old, progress }), EncryptionKeyError)).toBe(
      `backup ${made.old}: wrong encryption key: the key from env:TIDEMARK_ROTATION_WRONG does not unlock this data; nor do the previous keys (the key from env:TIDEMARK_ROTATION_NEW)`,
    );
    expect(await pg.sql("select count(*) from pg_database where datname = 'wrong'")).toBe('0');

    const missing = configWith('missing', { key: `env:${UNSET}` });
    expect(await oneLine(runBackup(missing, 'app', { type: 'logical', progress }), SecretError)).toBe(`encryption.key: environment variable ${UNSET} is not set`);
    expect(await oneLine(runRestore(missing, 'app', { to: pg.url('missing'), backup: made.old, progress }), SecretError)).toBe(`encryption.key: environment variable ${UNSET} is not set`);
    const missingPrevious = configWith('missing-previous', { key: 'env:TIDEMARK_ROTATION_NEW', previousKeys: ['env:TIDEMARK_ROTATION_OLD', `env:${UNSET}`] });
    expect(await oneLine(runVerify(missingPrevious, 'app', { progress }), SecretError)).toBe(`encryption.previousKeys[1]: environment variable ${UNSET} is not set`);
    expect(await pg.sql("select count(*) from pg_database where datname = 'missing'")).toBe('0');
    expect(hashAll(repo())).toEqual(before);
  });
});

describe('key rotation: a KMS alias moved to a new key', () => {
  const ACCOUNT = '111122223333';
  const OLD_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const NEW_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/0987dcba-09fe-87dc-65ba-ab0987654321`;
  const kms = mockClient(KMSClient);
  let fake: FakeKms;
  let dir: string;

  beforeEach(() => {
    kms.reset();
    fake = new FakeKms();
    fake.addKey(OLD_ARN, 'alias/tidemark');
    fake.addKey(NEW_ARN);
    kms.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommandInput) => fake.generateDataKey(input));
    kms.on(DecryptCommand).callsFake((input: DecryptCommandInput) => fake.decrypt(input));
    dir = mkdtempSync(join(tmpdir(), 'tidemark-kms-rotation-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  afterAll(() => kms.restore());

  const repositoryWith = async (encryption: { key: string; previousKeys?: string[] }) => new Repository(new FileStore(dir), await openEncryptionKeys(encryption));

  async function backUp(repository: Repository, body: Buffer): Promise<string> {
    await repository.checkKey();
    const writer = await repository.beginBackup('app', 'postgres', 'logical');
    await writer.writeObject('dump', Readable.from([body]), { compression: false });
    await writer.commit({ time: new Date().toISOString() }, TEST_PG_LOGICAL_DETAILS);
    return writer.id;
  }

  async function readBack(repository: Repository, id: string): Promise<Buffer> {
    const backup = await repository.openBackup('app', { id });
    const chunks: Buffer[] = [];
    for await (const chunk of await backup.read(backup.manifest.objects[0])) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  it('backups made before restore with the old key named in previousKeys; new ones use the new key; nothing stored changes', async () => {
    const oldBody = Buffer.from('made before the rotation\n'.repeat(100));
    const oldId = await backUp(await repositoryWith({ key: 'kms:alias/tidemark' }), oldBody);
    const before = hashAll(dir);

    fake.moveAlias('alias/tidemark', NEW_ARN); // UpdateAlias: the old key stays enabled

    // The blob names its key, and KMS alone would decrypt it; Tidemark pins Decrypt to the configured
    // key, so the moved alias refuses it, naming the key that wrapped it.
    const aliasOnly = await repositoryWith({ key: 'kms:alias/tidemark' });
    expect(await oneLine(aliasOnly.openBackup('app', { id: oldId }), EncryptionKeyError)).toBe(
      `backup ${oldId}: wrong encryption key: kms:alias/tidemark does not unlock this data (it was wrapped by ${OLD_ARN})`,
    );
    expect(await oneLine(aliasOnly.checkKey(), EncryptionKeyError)).toMatch(/after a rotation, name the old key in encryption\.previousKeys/);

    const rotated = await repositoryWith({ key: 'kms:alias/tidemark', previousKeys: [`kms:${OLD_ARN}`] });
    expect(await readBack(rotated, oldId)).toEqual(oldBody);
    const decrypts = kms.commandCalls(DecryptCommand).map((c) => c.args[0].input.KeyId);
    expect(decrypts.slice(-2)).toEqual(['alias/tidemark', OLD_ARN]); // the alias first, then the key named as previous

    const newBody = Buffer.from('made after the rotation\n'.repeat(100));
    const newId = await backUp(rotated, newBody);
    expect((await rotated.openBackup('app', { id: newId })).manifest.encryption.dataKey).toMatchObject({ provider: 'kms', keyId: NEW_ARN });
    expect(await readBack(aliasOnly, newId)).toEqual(newBody); // the new key alone opens what was made since
    expectUnchanged(before, hashAll(dir));
  });
});
