import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { ConfigError, EncryptionKeyError } from '../errors';
import type { DataKey, EncryptionContext, KeyProvider, KmsWrappedKey, WrappedKey } from './key-provider';

/**
 * Wraps data keys with AWS KMS: GenerateDataKey hands out a fresh AES-256 key with its wrapped form,
 * Decrypt unwraps it. The backup's encryption context is bound to every wrap, so KMS itself refuses
 * a wrapped key moved to another backup, and CloudTrail shows which backup each use was for.
 */

const KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key\/[A-Za-z0-9-]+|alias\/[A-Za-z0-9/_-]+)$/;
const ALIAS_NAME = /^alias\/[A-Za-z0-9/_-]+$/;
const KEY_ID = /^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE',
]);

export interface KmsKeyReference {
  /** What KMS is asked for: a key ARN, alias ARN, alias/<name> or key id. */
  readonly keyId: string;
  /** The region named by an ARN; undefined for aliases and key ids (the SDK's default region). */
  readonly region?: string;
}

/** Parses `kms:<key ARN | alias ARN | alias/name | key id>`; anything else is a ConfigError. */
export function parseKmsKeyRef(ref: string): KmsKeyReference {
  const keyId = ref.startsWith('kms:') ? ref.slice('kms:'.length) : ref;
  const arn = KEY_ARN.exec(keyId);
  if (arn) return { keyId, region: arn[1] };
  if (ALIAS_NAME.test(keyId) || KEY_ID.test(keyId)) return { keyId };
  throw new ConfigError(
    `encryption.key: 'kms:${keyId}' is not a KMS key (expected kms:<key ARN>, kms:<alias ARN>, kms:alias/<name> or kms:<key id>)`,
  );
}

type Action = 'GenerateDataKey' | 'Decrypt';

export class KmsKeyProvider implements KeyProvider {
  readonly description: string;
  readonly keyId: string;
  /** The KMS region when the reference names one; otherwise the SDK default applies. */
  readonly region: string | undefined;
  private readonly client: KMSClient;

  /** `ref` is what `encryption.key` holds: `kms:<key ARN | alias ARN | alias/name | key id>`. */
  constructor(ref: string) {
    const { keyId, region } = parseKmsKeyRef(ref);
    this.keyId = keyId;
    this.region = region;
    this.description = `kms:${keyId}`;
    // Credentials and (without an ARN) the region come from the default chain, never the config.
    // A dead endpoint must fail in seconds: every backup and restore starts with a KMS call.
    this.client = new KMSClient({
      ...(region ? { region } : {}),
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 3_000 },
    });
  }

  async generateDataKey(context: EncryptionContext): Promise<DataKey> {
    let out;
    try {
      out = await this.client.send(
        new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: { ...context } }),
      );
    } catch (e) {
      throw await this.failure(e, 'GenerateDataKey');
    }
    if (!out.Plaintext || out.Plaintext.length !== 32 || !out.CiphertextBlob || !out.KeyId) {
      throw new EncryptionKeyError(`KMS returned an incomplete data key for ${this.description}`);
    }
    const plaintext = Buffer.from(out.Plaintext);
    out.Plaintext.fill(0);
    const wrapped: KmsWrappedKey = {
      provider: 'kms',
      keyId: out.KeyId,
      ciphertext: Buffer.from(out.CiphertextBlob).toString('base64'),
    };
    return { plaintext, wrapped };
  }

  async decryptDataKey(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    if (wrapped.provider !== 'kms') {
      throw new EncryptionKeyError(
        `this data was encrypted with a local key (env:/file: secret), but the configured key is ${this.description}`,
      );
    }
    let out;
    try {
      // KeyId pins the configured key: KMS then refuses a blob wrapped by any other key instead of
      // quietly using whichever key the blob names.
      out = await this.client.send(
        new DecryptCommand({
          KeyId: this.keyId,
          CiphertextBlob: Buffer.from(wrapped.ciphertext, 'base64'),
          EncryptionContext: { ...context },
        }),
      );
    } catch (e) {
      throw await this.failure(e, 'Decrypt', wrapped.keyId);
    }
    if (!out.Plaintext || out.Plaintext.length !== 32) {
      throw new EncryptionKeyError(`KMS returned no 32-byte data key for ${this.description}`);
    }
    const plaintext = Buffer.from(out.Plaintext);
    out.Plaintext.fill(0);
    return plaintext;
  }

  /** One line naming the key and what to do; AWS error texts describe requests, never key material. */
  private async failure(err: unknown, action: Action, wrappedBy?: string): Promise<EncryptionKeyError> {
    const e = (typeof err === 'object' && err !== null ? err : {}) as {
      name?: string; code?: string; message?: string; errors?: { code?: string }[];
    };
    const name = e.name ?? '';
    const message = (e.message ?? '').split('\n')[0];
    const key = this.description;
    const options = { cause: err };
    const fail = (text: string): EncryptionKeyError => new EncryptionKeyError(text, options);

    switch (name) {
      case 'IncorrectKeyException':
        return fail(`wrong encryption key: ${key} does not unlock this data${wrappedBy ? ` (it was wrapped by ${wrappedBy})` : ''}`);
      case 'InvalidCiphertextException':
        return fail(`wrong encryption key: ${key} does not unlock this data (or the wrapped key is damaged or belongs to another backup)`);
      case 'AccessDeniedException':
        return fail(`no permission to use ${key} (kms:${action}): allow it in the key policy or the role's IAM policy`);
      case 'NotFoundException':
        return fail(`KMS key ${key} does not exist in ${await this.regionShown()}`);
      case 'DisabledException':
      case 'KMSInvalidStateException':
        return fail(`KMS key ${key} is disabled or pending deletion: enable it (or cancel its deletion) to use these backups`);
      case 'InvalidKeyUsageException':
        return fail(`KMS key ${key} cannot wrap data keys: it must be a symmetric ENCRYPT_DECRYPT key`);
      case 'KeyUnavailableException':
      case 'DependencyTimeoutException':
      case 'KMSInternalException':
        return fail(`KMS could not use ${key} just now (${name}); try again`);
      case 'CredentialsProviderError':
      case 'UnrecognizedClientException':
      case 'InvalidSignatureException':
      case 'ExpiredTokenException':
        return fail(`no valid AWS credentials to use ${key} (${name}): set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role`);
    }
    // The retry middleware may rewrap errors from another realm into a bare message, so the code
    // is looked for in the message too.
    const networkCode = [e.code, ...(e.errors ?? []).map((x) => x.code), ...(message.match(/\bE[A-Z_]+\b/g) ?? [])]
      .find((c) => c !== undefined && NETWORK_ERRORS.has(c));
    if (networkCode || name === 'TimeoutError') {
      return fail(`cannot reach KMS in ${await this.regionShown()} (${networkCode ?? 'connection timed out'}) to use ${key}`);
    }
    if (/region is missing/i.test(message)) {
      return fail(`no AWS region for ${key}: set AWS_REGION, or give the key as an ARN`);
    }
    const detail = `${name}${message ? `: ${message}` : ''}`.replace(/\s+/g, ' ').trim();
    return fail(`KMS ${action} with ${key} failed: ${detail || String(err)}`);
  }

  private async regionShown(): Promise<string> {
    if (this.region) return this.region;
    try {
      return await this.client.config.region();
    } catch {
      return 'the default region';
    }
  }
}
