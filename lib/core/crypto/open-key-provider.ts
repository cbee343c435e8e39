import { ConfigError } from '../errors';
import { resolveSecret } from '../secrets';
import type { KeyProvider } from './key-provider';
import { LocalKeyProvider } from './local-key-provider';

/** The key provider for `encryption.key`: env:/file: → a local secret; kms: → AWS KMS. */
export async function openKeyProvider(ref: string): Promise<KeyProvider> {
  if (ref.startsWith('env:') || ref.startsWith('file:')) {
    const secret = await resolveSecret(ref, 'encryption.key');
    return new LocalKeyProvider(secret, `the key from ${ref}`);
  }
  if (ref.startsWith('kms:')) {
    // Loaded on demand: the KMS SDK costs startup time that local keys should not pay.
    const { KmsKeyProvider } = await import('./kms-key-provider');
    return new KmsKeyProvider(ref);
  }
  throw new ConfigError(`encryption.key: '${ref}' is not a key reference (expected env:NAME, file:/path or kms:<key>)`);
}
