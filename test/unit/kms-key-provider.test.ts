import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  DecryptCommand,
  DisabledException,
  GenerateDataKeyCommand,
  KMSClient,
  KMSInvalidStateException,
  KMSServiceException,
  type DecryptCommandInput,
  type GenerateDataKeyCommandInput,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { openKeyProvider } from '../../lib/core/crypto/open-key-provider';
import { KmsKeyProvider, parseKmsKeyRef } from '../../lib/core/crypto/kms-key-provider';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { ConfigError, EncryptionKeyError } from '../../lib/core/errors';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';
import { FakeKms } from '../harness/fake-kms';

const ACCOUNT = '111122223333';
const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
const OTHER_KEY_ID = '0987dcba-09fe-87dc-65ba-ab0987654321';
const KEY_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/${KEY_ID}`;
const OTHER_KEY_ARN = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/${OTHER_KEY_ID}`;
const CONTEXT = { tidemark: 'backup', source: 'app', backup: '20261124T075740.123Z-3f9a1c' };

const meta = { $metadata: {} };

/** KMS has no modelled AccessDeniedException: the SDK raises its generic exception with that name. */
const accessDenied = (message: string) =>
  new KMSServiceException({ name: 'AccessDeniedException', $fault: 'client', message, ...meta });

const kms = mockClient(KMSClient);
let fake: FakeKms;

beforeEach(() => {
  kms.reset();
  fake = new FakeKms();
  fake.addKey(KEY_ARN, 'alias/tidemark');
  fake.addKey(OTHER_KEY_ARN, 'alias/other');
  kms.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommandInput) => fake.generateDataKey(input));
  kms.on(DecryptCommand).callsFake((input: DecryptCommandInput) => fake.decrypt(input));
});
afterAll(() => kms.restore());

async function failure(promise: Promise<unknown>): Promise<EncryptionKeyError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(EncryptionKeyError);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return error as EncryptionKeyError;
}

describe('key references', () => {
  it('accepts key ARNs, alias ARNs, alias names and key ids', () => {
    expect(parseKmsKeyRef(`kms:${KEY_ARN}`)).toEqual({ keyId: KEY_ARN, region: 'eu-west-1' });
    const aliasArn = `arn:aws:kms:us-east-2:${ACCOUNT}:alias/tidemark`;
    expect(parseKmsKeyRef(`kms:${aliasArn}`)).toEqual({ keyId: aliasArn, region: 'us-east-2' });
    expect(parseKmsKeyRef('kms:alias/tidemark/prod')).toEqual({ keyId: 'alias/tidemark/prod' });
    expect(parseKmsKeyRef(`kms:${KEY_ID}`)).toEqual({ keyId: KEY_ID });
    expect(parseKmsKeyRef('kms:mrk-1234abcd12ab34cd56ef1234567890ab')).toEqual({ keyId: 'mrk-1234abcd12ab34cd56ef1234567890ab' });
    expect(parseKmsKeyRef(`kms:arn:aws-us-gov:kms:us-gov-west-1:${ACCOUNT}:key/${KEY_ID}`).region).toBe('us-gov-west-1');
  });

  it('fails when the reference is not a KMS key', () => {
    for (const bad of ['kms:', 'kms:tidemark', `kms:arn:aws:s3:::bucket`, 'kms:alias/', `kms:arn:aws:kms:eu-west-1:${ACCOUNT}:secret/x`]) {
      expect(() => parseKmsKeyRef(bad)).toThrow(ConfigError);
    }
    expect(() => parseKmsKeyRef('kms:tidemark')).toThrow(
      "encryption.key: 'kms:tidemark' is not a KMS key (expected kms:<key ARN>, kms:<alias ARN>, kms:alias/<name> or kms:<key id>)",
    );
  });

  it('uses the region of a key ARN for the KMS client', async () => {
    const provider = new KmsKeyProvider(`kms:arn:aws:kms:ap-southeast-2:${ACCOUNT}:key/${KEY_ID}`);
    expect(provider.region).toBe('ap-southeast-2');
    expect(provider.description).toBe(`kms:arn:aws:kms:ap-southeast-2:${ACCOUNT}:key/${KEY_ID}`);
    await provider.generateDataKey(CONTEXT).catch(() => undefined);
    const client = kms.call(0).thisValue as KMSClient;
    await expect(client.config.region()).resolves.toBe('ap-southeast-2');
  });

  it('is what openKeyProvider returns for kms: references', async () => {
    const provider = await openKeyProvider('kms:alias/tidemark');
    expect(provider).toBeInstanceOf(KmsKeyProvider);
    expect(provider.description).toBe('kms:alias/tidemark');
    await expect(openKeyProvider('kms:not a key')).rejects.toThrow(ConfigError);
  });
});

describe('wrapping data keys', () => {
  it('round-trips a data key and records the key ARN KMS reports', async () => {
    const provider = new KmsKeyProvider('kms:alias/tidemark');
    const { plaintext, wrapped } = await provider.generateDataKey(CONTEXT);
    expect(plaintext).toHaveLength(32);
    expect(wrapped).toEqual({ provider: 'kms', keyId: KEY_ARN, ciphertext: expect.any(String) });
    if (wrapped.provider !== 'kms') throw new Error('unreachable');
    expect(Buffer.from(wrapped.ciphertext, 'base64').toString('base64')).toBe(wrapped.ciphertext);
    expect(Buffer.from(wrapped.ciphertext, 'base64').includes(plaintext)).toBe(false);
    await expect(provider.decryptDataKey(wrapped, { ...CONTEXT })).resolves.toEqual(plaintext);
  });

  it('sends the key, the key spec and the encryption context', async () => {
    const provider = new KmsKeyProvider(`kms:${KEY_ARN}`);
    const { wrapped } = await provider.generateDataKey(CONTEXT);
    await provider.decryptDataKey(wrapped, CONTEXT);
    const [generate] = kms.commandCalls(GenerateDataKeyCommand);
    expect(generate.args[0].input).toEqual({ KeyId: KEY_ARN, KeySpec: 'AES_256', EncryptionContext: CONTEXT });
    const [decrypt] = kms.commandCalls(DecryptCommand);
    expect(decrypt.args[0].input).toMatchObject({ KeyId: KEY_ARN, EncryptionContext: CONTEXT });
  });

  it('fails when the encryption context does not match (a wrapped key moved to another backup)', async () => {
    const provider = new KmsKeyProvider('kms:alias/tidemark');
    const { wrapped } = await provider.generateDataKey(CONTEXT);
    const error = await failure(provider.decryptDataKey(wrapped, { ...CONTEXT, backup: '20261125T000000.000Z-000000' }));
    expect(error.message).toMatch(/^wrong encryption key: kms:alias\/tidemark does not unlock this data/);
  });

  it('fails when the data key was wrapped by another KMS key (IncorrectKeyException)', async () => {
    const { wrapped } = await new KmsKeyProvider('kms:alias/other').generateDataKey(CONTEXT);
    const error = await failure(new KmsKeyProvider('kms:alias/tidemark').decryptDataKey(wrapped, CONTEXT));
    expect(error.message).toBe(`wrong encryption key: kms:alias/tidemark does not unlock this data (it was wrapped by ${OTHER_KEY_ARN})`);
  });

  it('fails when the data was encrypted with a local key', async () => {
    const local = new LocalKeyProvider('x'.repeat(40), 'the key from env:TIDEMARK_KEY');
    const { wrapped } = await local.generateDataKey(CONTEXT);
    const error = await failure(new KmsKeyProvider('kms:alias/tidemark').decryptDataKey(wrapped, CONTEXT));
    expect(error.message).toBe('this data was encrypted with a local key (env:/file: secret), but the configured key is kms:alias/tidemark');
    expect(kms.calls()).toHaveLength(0);
  });
});

describe('KMS refusals become one-line errors naming the key', () => {
  const provider = () => new KmsKeyProvider(`kms:${KEY_ARN}`);
  const wrapped = { provider: 'kms', keyId: KEY_ARN, ciphertext: Buffer.from('blob').toString('base64') } as const;

  it('fails when access is denied', async () => {
    kms.on(GenerateDataKeyCommand).rejects(accessDenied(`User: arn:aws:sts::${ACCOUNT}:assumed-role/x is not authorized`));
    kms.on(DecryptCommand).rejects(accessDenied('denied'));
    expect((await failure(provider().generateDataKey(CONTEXT))).message).toBe(
      `no permission to use kms:${KEY_ARN} (kms:GenerateDataKey): allow it in the key policy or the role's IAM policy`,
    );
    expect((await failure(provider().decryptDataKey(wrapped, CONTEXT))).message).toBe(
      `no permission to use kms:${KEY_ARN} (kms:Decrypt): allow it in the key policy or the role's IAM policy`,
    );
  });

  it('fails when the key is disabled or pending deletion', async () => {
    kms.on(DecryptCommand).rejects(new DisabledException({ message: 'key is disabled', ...meta }));
    const disabled = `KMS key kms:${KEY_ARN} is disabled or pending deletion: enable it (or cancel its deletion) to use these backups`;
    expect((await failure(provider().decryptDataKey(wrapped, CONTEXT))).message).toBe(disabled);
    kms.on(GenerateDataKeyCommand).rejects(new KMSInvalidStateException({ message: 'pending deletion', ...meta }));
    expect((await failure(provider().generateDataKey(CONTEXT))).message).toBe(disabled);
  });

  it('fails when the key does not exist', async () => {
    const error = await failure(new KmsKeyProvider(`kms:arn:aws:kms:eu-west-1:${ACCOUNT}:alias/missing`).generateDataKey(CONTEXT));
    expect(error.message).toBe(`KMS key kms:arn:aws:kms:eu-west-1:${ACCOUNT}:alias/missing does not exist in eu-west-1`);
  });

  it('fails clearly when KMS cannot be reached', async () => {
    kms.on(GenerateDataKeyCommand).rejects(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }));
    const error = await failure(provider().generateDataKey(CONTEXT));
    expect(error.message).toBe(`cannot reach KMS in eu-west-1 (ECONNREFUSED) to use kms:${KEY_ARN}`);
  });

  it('never puts the data key or the wrapped blob into a message', async () => {
    const { plaintext, wrapped: good } = await provider().generateDataKey(CONTEXT);
    const error = await failure(provider().decryptDataKey(good, { ...CONTEXT, source: 'other' }));
    if (good.provider !== 'kms') throw new Error('unreachable');
    expect(error.message).not.toContain(good.ciphertext);
    expect(error.message).not.toContain(plaintext.toString('base64'));
    expect(error.message).not.toContain(plaintext.toString('hex'));
  });
});

describe('a repository encrypted with KMS', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidemark-kms-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes a backup whose manifest unwraps again and whose object reads back', async () => {
    const repository = new Repository(new FileStore(dir), new KmsKeyProvider('kms:alias/tidemark'));
    await repository.checkKey();
    const writer = await repository.beginBackup('app', 'postgres', 'logical');
    const body = Buffer.from('select 1;\n'.repeat(1000));
    await writer.writeObject('dump', Readable.from([body]), { compression: false });
    await writer.commit({ time: new Date().toISOString() }, TEST_PG_LOGICAL_DETAILS);

    // A fresh process: a new provider and repository over the same folder.
    const reopened = new Repository(new FileStore(dir), new KmsKeyProvider(`kms:${KEY_ARN}`));
    await reopened.checkKey();
    const backup = await reopened.openBackup('app', { id: writer.id });
    expect(backup.manifest.encryption.dataKey).toMatchObject({ provider: 'kms', keyId: KEY_ARN });
    const context = { tidemark: 'backup', source: 'app', backup: writer.id, repository: expect.stringMatching(/^[0-9a-f]{32}$/) };
    expect(backup.manifest.encryption.context).toEqual(context);
    const chunks: Buffer[] = [];
    for await (const chunk of await backup.read(backup.manifest.objects[0])) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(body);

    // The decrypt for this backup carried its own context, so KMS bound the key to it.
    const decrypts = kms.commandCalls(DecryptCommand).map((c) => c.args[0].input.EncryptionContext);
    expect(decrypts).toContainEqual(context);

    // No plaintext data key anywhere in the repository.
    const manifestPath = join(dir, 'app', 'backups', writer.id, 'manifest.json');
    const manifestText = await readFile(manifestPath, 'utf8');
    expect(manifestText).not.toContain(backup.dataKey.toString('base64'));
    expect(manifestText).not.toContain(backup.dataKey.toString('hex'));
    expect(await readdir(join(dir, 'app', 'backups', writer.id))).toEqual(['dump', 'lease.json', 'manifest.json'].sort());
  });

  it('fails to open the backup with another KMS key, naming the backup', async () => {
    const repository = new Repository(new FileStore(dir), new KmsKeyProvider('kms:alias/tidemark'));
    const writer = await repository.beginBackup('app', 'postgres', 'logical');
    await writer.commit({ time: new Date().toISOString() }, TEST_PG_LOGICAL_DETAILS);
    const other = new Repository(new FileStore(dir), new KmsKeyProvider('kms:alias/other'));
    const error = await failure(other.openBackup('app', { latest: true }));
    expect(error.message).toBe(`backup ${writer.id}: wrong encryption key: kms:alias/other does not unlock this data (it was wrapped by ${KEY_ARN})`);
  });
});
