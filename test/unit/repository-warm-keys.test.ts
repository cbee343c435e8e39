import { scrypt } from 'node:crypto';
import { join } from 'node:path';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { useTempDir } from '../harness/tidemark';

// scrypt counted: each call is one key derivation (~0.1 s), the wait warmKeys moves off a restore's path.
jest.mock('node:crypto', () => {
  const actual = jest.requireActual<typeof import('node:crypto')>('node:crypto');
  return { ...actual, scrypt: jest.fn(actual.scrypt) };
});
const derivations = scrypt as unknown as jest.Mock;

const SECRET = 'a-local-secret-that-is-long-enough-0123456789';
const context = { tidemark: 'test' };

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
