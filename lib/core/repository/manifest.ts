import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Engine } from '../config/schema';
import type { EncryptionContext, WrappedKey } from '../crypto/key-provider';
import { IntegrityError, TidemarkError } from '../errors';
import type { StoredObject } from '../pipeline/stored-object';

/**
 * The manifest is the backup: every object with its size, checksums and key, the wrapped data key,
 * and the point in time it restores to. It is written last; listing manifests is the catalog.
 *
 * On disk:  { "manifest": {...}, "seal": { "sha256": …, "hmac": … } }
 * sha256 catches accidental damage without any key (list, catalog); the HMAC, keyed from the
 * backup's data key, catches deliberate edits (verify, restore).
 */
export const MANIFEST_FORMAT = 'tidemark.backup';
export const MANIFEST_VERSION = 1;

export type BackupType = 'full' | 'diff' | 'incr' | 'logical';

export interface RestorePoint {
  /** Wall-clock time the backup's data is consistent at. */
  readonly time: string;
  readonly lsn?: string;
  readonly binlog?: { readonly file: string; readonly position: number };
}

export interface BackupManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: typeof MANIFEST_VERSION;
  readonly id: string;
  readonly source: string;
  readonly engine: Engine;
  readonly type: BackupType;
  readonly parent?: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly restorePoint: RestorePoint;
  readonly encryption: {
    readonly algorithm: string;
    readonly context: EncryptionContext;
    readonly dataKey: WrappedKey;
  };
  readonly objects: readonly StoredObject[];
  readonly plainBytes: number;
  readonly storedBytes: number;
  /** Engine specifics: server and tool versions, database, format. */
  readonly details: Readonly<Record<string, unknown>>;
}

const iso = z.iso.datetime({ offset: true });
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const StoredObjectSchema = z.object({
  name: z.string().min(1),
  key: z.string().min(1),
  compression: z.enum(['zstd', 'none']),
  plainBytes: z.number().int().nonnegative(),
  plainSha256: hex64,
  storedBytes: z.number().int().nonnegative(),
  storedSha256: hex64,
});

const WrappedKeySchema = z.discriminatedUnion('provider', [
  z.object({
    provider: z.literal('local'),
    kdf: z.literal('scrypt'),
    n: z.number().int(),
    r: z.number().int(),
    p: z.number().int(),
    salt: z.string(),
    iv: z.string(),
    ciphertext: z.string(),
    tag: z.string(),
  }),
  z.object({ provider: z.literal('kms'), keyId: z.string(), ciphertext: z.string() }),
]);

const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  id: z.string(),
  source: z.string(),
  engine: z.enum(['postgres', 'mysql']),
  type: z.enum(['full', 'diff', 'incr', 'logical']),
  parent: z.string().optional(),
  startedAt: iso,
  finishedAt: iso,
  restorePoint: z.object({
    time: iso,
    lsn: z.string().optional(),
    binlog: z.object({ file: z.string(), position: z.number().int() }).optional(),
  }),
  encryption: z.object({
    algorithm: z.string(),
    context: z.record(z.string(), z.string()),
    dataKey: WrappedKeySchema,
  }),
  objects: z.array(StoredObjectSchema),
  plainBytes: z.number().int().nonnegative(),
  storedBytes: z.number().int().nonnegative(),
  details: z.record(z.string(), z.unknown()),
});

const SealedSchema = z.object({
  manifest: z.unknown(),
  seal: z.object({ sha256: hex64, hmac: hex64 }),
});

function macKey(dataKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'tidemark manifest mac v1', 32));
}

export function sealManifest(manifest: BackupManifest, dataKey: Buffer): Buffer {
  const body = JSON.stringify(manifest);
  const seal = {
    sha256: createHash('sha256').update(body).digest('hex'),
    hmac: createHmac('sha256', macKey(dataKey)).update(body).digest('hex'),
  };
  return Buffer.from(`${JSON.stringify({ manifest, seal }, null, 2)}\n`, 'utf8');
}

/** A manifest read from storage whose checksum matched; its HMAC is checked once the key is known. */
export interface OpenedManifest {
  readonly manifest: BackupManifest;
  /** Throws IntegrityError unless the manifest is exactly what the holder of `dataKey` wrote. */
  authenticate(dataKey: Buffer): void;
}

export function openManifest(bytes: Buffer, where: string): OpenedManifest {
  let sealed: z.infer<typeof SealedSchema>;
  try {
    sealed = SealedSchema.parse(JSON.parse(bytes.toString('utf8')));
  } catch {
    throw new IntegrityError(`${where}: manifest is damaged (not a sealed Tidemark manifest)`);
  }
  const raw = sealed.manifest as { format?: unknown; version?: unknown };
  if (raw?.format === MANIFEST_FORMAT && typeof raw.version === 'number' && raw.version > MANIFEST_VERSION) {
    throw new TidemarkError(`${where}: manifest format version ${raw.version} is newer than this Tidemark understands; upgrade Tidemark`);
  }
  const body = JSON.stringify(sealed.manifest);
  if (createHash('sha256').update(body).digest('hex') !== sealed.seal.sha256) {
    throw new IntegrityError(`${where}: manifest is damaged (checksum mismatch)`);
  }
  const parsed = ManifestSchema.safeParse(sealed.manifest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(`${where}: manifest is invalid at ${issue.path.join('.')}: ${issue.message}`);
  }
  const manifest = parsed.data as BackupManifest;
  return {
    manifest,
    authenticate(dataKey: Buffer) {
      const expected = createHmac('sha256', macKey(dataKey)).update(body).digest();
      if (!timingSafeEqual(expected, Buffer.from(sealed.seal.hmac, 'hex'))) {
        throw new IntegrityError(`${where}: manifest was altered after it was written (HMAC mismatch)`);
      }
    },
  };
}
