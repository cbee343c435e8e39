import { scrypt } from 'node:crypto';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import type { LocalWrappedKey } from '../../lib/core/crypto/key-provider';

// scrypt counted: each call is one key derivation (~0.1 s).
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
