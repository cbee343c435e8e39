import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Engine } from '../config/schema';
import { BACKUP_TYPES, type BackupType } from '../engines/backup-types';
import { BackupDetailsSchema, type BackupDetails } from '../engines/registry';
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
 *
 * Versions: 1 had untyped `details` and a plaintext SHA-256 on every object. 2 types `details` by
 * method (`kind`), adds `chain`, and drops `plainSha256` where node never sees the plaintext (the
 * lean data plane: the dump tool writes straight into zstd, whose frame checksum covers it).
 * Version 1 manifests are still read, and upgraded in memory after their seal was checked.
 */
export const MANIFEST_FORMAT = 'tidemark.backup';
export const MANIFEST_VERSION = 2;

export type { BackupType };

export interface RestorePoint {
  /** Wall-clock time the backup's data is consistent at. */
  readonly time: string;
  readonly lsn?: string;
  readonly binlog?: { readonly file: string; readonly position: number };
}

/** Where a diff or incr backup stands in its chain (physical backups). */
export interface BackupChain {
  /** The full backup the chain starts from. */
  readonly base: string;
  /** 1 for a backup whose parent is the full, 2 for the next, … */
  readonly depth: number;
}

export interface BackupManifest {
  readonly format: typeof MANIFEST_FORMAT;
  /** The version it was written with (1 or 2); its content has been upgraded to the current shape. */
  readonly version: 1 | typeof MANIFEST_VERSION;
  readonly id: string;
  readonly source: string;
  readonly engine: Engine;
  readonly type: BackupType;
  readonly parent?: string;
  readonly chain?: BackupChain;
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
  /** Method specifics (server and tool versions, database, snapshot, …), keyed by `kind`. */
  readonly details: BackupDetails;
}

const iso = z.iso.datetime({ offset: true });
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

const StoredObjectSchema = z.object({
  name: z.string().min(1),
  key: z.string().min(1),
  compression: z.enum(['zstd', 'none']),
  plainBytes: z.number().int().nonnegative(),
  plainSha256: hex64.optional(),
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
  version: z.union([z.literal(1), z.literal(MANIFEST_VERSION)]),
  id: z.string(),
  source: z.string(),
  engine: z.enum(['postgres', 'mysql']),
  type: z.enum(BACKUP_TYPES),
  parent: z.string().optional(),
  chain: z.object({ base: z.string(), depth: z.number().int().positive() }).optional(),
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
  details: BackupDetailsSchema,
});

/**
 * A version 1 manifest in today's shape. v1 details had no `kind`: PostgreSQL logical was the only
 * engine writing objects, and RDS snapshot details already carried their kind.
 */
function upgradeV1(raw: unknown): unknown {
  const m = raw as { version?: unknown; engine?: unknown; type?: unknown; details?: Record<string, unknown> };
  if (m?.version !== 1 || !m.details || 'kind' in m.details) return raw;
  if (m.engine === 'postgres' && m.type === 'logical') return { ...m, details: { kind: 'pg-logical', ...m.details } };
  return raw;
}

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
  const parsed = ManifestSchema.safeParse(upgradeV1(sealed.manifest));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(`${where}: manifest is invalid at ${issue.path.join('.')}: ${issue.message}`);
  }
  const manifest: BackupManifest = parsed.data;
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
