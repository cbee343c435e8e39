import { ConfigError } from '../errors';
import { resolveSecret } from '../secrets';
import type { KeyProvider } from './key-provider';
import { KeyRing } from './key-ring';
import { LocalKeyProvider } from './local-key-provider';

/** The key provider for `encryption.key`: env:/file: → a local secret; kms: → AWS KMS. */
export async function openKeyProvider(ref: string, setting = 'encryption.key'): Promise<KeyProvider> {
  if (ref.startsWith('env:') || ref.startsWith('file:')) {
    const secret = await resolveSecret(ref, setting);
    return new LocalKeyProvider(secret, `the key from ${ref}`);
  }
  if (ref.startsWith('kms:')) {
    // Loaded on demand: the KMS SDK costs startup time that local keys should not pay.
    const { KmsKeyProvider } = await import('./kms-key-provider');
    return new KmsKeyProvider(ref);
  }
  throw new ConfigError(`${setting}: '${ref}' is not a key reference (expected env:NAME, file:/path or kms:<key>)`);
}

/**
 * The keys of `encryption`: the current key, and the previous keys a rotation left (key-ring.ts).
 * Every previous key is resolved now, so a missing one is named before anything starts.
 */
export async function openEncryptionKeys(encryption: { readonly key: string; readonly previousKeys?: readonly string[] }): Promise<KeyProvider> {
  const current = await openKeyProvider(encryption.key);
  const previous = encryption.previousKeys ?? [];
  if (previous.length === 0) return current;
  return new KeyRing(current, await Promise.all(previous.map((ref, i) => openKeyProvider(ref, `encryption.previousKeys[${i}]`))));
}
