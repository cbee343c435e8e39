import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import type { LocalWrappedKey } from '../../lib/core/crypto/key-provider';

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
});
