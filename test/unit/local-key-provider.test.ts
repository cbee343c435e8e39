import { scrypt } from 'node:crypto';
import { join } from 'node:path';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import type { LocalWrappedKey } from '../../lib/core/crypto/key-provider';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { useTempDir } from '../harness/tidemark';

// scrypt counted: each call is one key derivation (~0.1 s), the wait prepare and warmKeys move off a restore's path.
jest.mock('node:crypto', () => {
  const actual = jest.requireActual<typeof import('node:crypto')>('node:crypto');
  return { ...actual, scrypt: jest.fn(actual.scrypt) };
});
const derivations = scrypt as unknown as jest.Mock;

const SECRET = 'a-local-secret-that-is-long-enough-0123456789';
const context = { tidemark: 'test' };

describe('LocalKeyProvider: one scrypt per process and salt', () => {
  it('after unwrapping the repository key check, new wraps reuse its salt (so its derived key)', async () => {
    const marker = (await new LocalKeyProvider(SECRET, 'creator').generateDataKey(context)).wrapped as LocalWrappedKey;
    const keys = new LocalKeyProvider(SECRET, 'backup');
    await keys.decryptDataKey(marker, context);
    const next = (await keys.generateDataKey(context)).wrapped as LocalWrappedKey;
    expect(next.salt).toBe(marker.salt);
  });

  it('the first wrap fixes the salt: a later unwrap of another salt does not change it', async () => {
    const other = (await new LocalKeyProvider(SECRET, 'other').generateDataKey(context)).wrapped as LocalWrappedKey;
    const keys = new LocalKeyProvider(SECRET, 'backup');
    const first = (await keys.generateDataKey(context)).wrapped as LocalWrappedKey;
    await keys.decryptDataKey(other, context);
    const second = (await keys.generateDataKey(context)).wrapped as LocalWrappedKey;
    expect(first.salt).not.toBe(other.salt);
    expect(second.salt).toBe(first.salt);
  });

  it('prepare derives the key for the salt of a wrapped key ahead: the unwrap that follows derives nothing more', async () => {
    const wrapped = (await new LocalKeyProvider(SECRET, 'creator').generateDataKey(context)).wrapped as LocalWrappedKey;
    const keys = new LocalKeyProvider(SECRET, 'restore');
    derivations.mockClear();
    keys.prepare(wrapped);
    expect(derivations).toHaveBeenCalledTimes(1);
    await keys.decryptDataKey(wrapped, context);
    expect(derivations).toHaveBeenCalledTimes(1);
  });

  it('prepare starts nothing for what is not its to open: a KMS key, an implausible cost', async () => {
    const wrapped = (await new LocalKeyProvider(SECRET, 'creator').generateDataKey(context)).wrapped as LocalWrappedKey;
    const keys = new LocalKeyProvider(SECRET, 'restore');
    derivations.mockClear();
    keys.prepare({ provider: 'kms', keyId: 'arn:aws:kms:eu-west-1:111122223333:key/x', ciphertext: 'AAAA' });
    keys.prepare({ ...wrapped, n: 2 ** 30 });
    expect(derivations).not.toHaveBeenCalled();
    await expect(keys.decryptDataKey({ ...wrapped, n: 2 ** 30 }, context)).rejects.toThrow('implausible scrypt cost');
  });
});

describe('Repository.warmKeys', () => {
  const tmp = useTempDir('tidemark-warm-keys-');

  it("derives the marker's key ahead, and a backup's key (wrapped with the marker's salt) then opens with no derivation of its own", async () => {
    const store = () => new FileStore(join(tmp.path, 'repo'));
    // A backup process: checks the key (writes the marker), then wraps its data key.
    const writer = new Repository(store(), new LocalKeyProvider(SECRET, 'backup'));
    await writer.checkKey();
    const { wrapped } = await writer.keys.generateDataKey(context);

    // A restore process.
    const keys = new LocalKeyProvider(SECRET, 'restore');
    const reader = new Repository(store(), keys);
    derivations.mockClear();
    reader.warmKeys();
    for (let i = 0; i < 100 && derivations.mock.calls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(derivations).toHaveBeenCalledTimes(1);
    await keys.decryptDataKey(wrapped, context);
    expect(derivations).toHaveBeenCalledTimes(1);
  });

  it('does nothing, and says nothing, where there is no marker yet', async () => {
    const reader = new Repository(new FileStore(join(tmp.path, 'empty')), new LocalKeyProvider(SECRET, 'restore'));
    derivations.mockClear();
    reader.warmKeys();
    await new Promise((r) => setTimeout(r, 100));
    expect(derivations).not.toHaveBeenCalled();
  });
});
