import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { throwIfAborted } from '../abort';
import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { registrationOf } from '../engines/registry';
import { archiveFor, type ArchiveVerification } from '../engines/continuous-archive';
import { BackupNotFound, EncryptionKeyError, TidemarkError } from '../errors';
import type { Progress } from '../progress';
import { parseBackupId } from '../repository/backup-id';
import { Repository } from '../repository/repository';

export interface VerifiedBackup {
  readonly id: string;
  readonly ok: boolean;
  readonly objects: number;
  readonly storedBytes: number;
  /** One line per problem found; empty when ok. */
  readonly problems: readonly string[];
  /** Things to know that do not make the backup unusable (pages damaged on the source at backup time). */
  readonly warnings: readonly string[];
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly backups: readonly VerifiedBackup[];
  /** The continuous archive (WAL, binlog): continuity and every object; absent with --backup. */
  readonly archive?: ArchiveVerification;
}

const discard = () => new Writable({ write: (_c, _e, done) => done() });

/**
 * Reads every object of every (or one) backup end to end: stored SHA-256, every GCM tag, the
 * final-segment flag, decompression, plaintext SHA-256, and the manifest's own seal. Nothing is
 * trusted from listings or sizes alone.
 */
export async function runVerify(
  config: TidemarkConfig,
  source: string,
  options: { backup?: string; progress: Progress; signal?: AbortSignal },
): Promise<VerifyResult> {
  const src = sourceConfig(config, source);
  if (options.backup !== undefined) parseBackupId(options.backup); // '' or a typo is a usage error, not "verify everything"
  const repository = await Repository.open(config);
  const catalog = await repository.catalog(source);
  const ids = options.backup ? [options.backup] : catalog.backups.map((b) => b.id);
  const registration = options.backup ? undefined : archiveFor(src);
  const archive = registration ? await registration.load() : undefined;
  const archived = archive ? await archive.describe(repository.store, source) : undefined;
  if (ids.length === 0 && catalog.problems.length === 0 && !archived) {
    throw new BackupNotFound(`source '${source}' has no backups in ${repository.store.description}`);
  }
  const results: VerifiedBackup[] = catalog.problems
    .filter((p) => !options.backup || p.id === options.backup)
    .map((p) => ({ id: p.id, ok: false, objects: 0, storedBytes: 0, problems: [p.reason], warnings: [] }));
  for (const id of ids) {
    throwIfAborted(options.signal);
    const problems: string[] = [];
    const warnings: string[] = [];
    let objects = 0;
    let storedBytes = 0;
    try {
      const backup = await repository.openBackup(source, { id });
      await repository.store.rehydrate?.(backup.manifest.objects.map((o) => o.key), { progress: options.progress, signal: options.signal });
      const total = backup.manifest.storedBytes;
      options.progress.start(`verify ${id}`, total);
      try {
        for (const object of backup.manifest.objects) {
          try {
            await pipeline(await backup.read(object, (n) => options.progress.advance(n)), discard(), { signal: options.signal });
            objects++;
            storedBytes += object.storedBytes;
          } catch (e) {
            if (!(e instanceof TidemarkError) || options.signal?.aborted) throw e; // an interruption is not damage
            problems.push(e.message);
          }
        }
      } finally {
        options.progress.stop();
      }
      // Method-specific checks: a physical backup also needs the packs of its ancestors.
      const method = await registrationOf(backup.manifest.details.kind).load();
      if (method.verifyBackup) {
        const extra = await method.verifyBackup(repository, source, backup);
        problems.push(...extra.problems);
        warnings.push(...extra.warnings);
      }
    } catch (e) {
      // A wrong key says nothing about the backup's health: stop rather than report it damaged.
      if (!(e instanceof TidemarkError) || options.signal?.aborted || e instanceof EncryptionKeyError || (options.backup && e instanceof BackupNotFound)) throw e;
      problems.push(e.message);
    }
    results.push({ id, ok: problems.length === 0, objects, storedBytes, problems, warnings });
  }
  results.sort((a, b) => a.id.localeCompare(b.id));
  let archiveResult: ArchiveVerification | undefined;
  if (registration && archive && archived) {
    // Continuity matters from the oldest backup the archive replays onto; before it, nothing needs the WAL.
    const oldest = catalog.backups.find((b) => registration.replaysOnto.includes(b.details.kind));
    archiveResult = await archive.verify(repository, source, { from: oldest?.restorePoint, progress: options.progress, signal: options.signal });
  }
  return { ok: results.every((r) => r.ok) && (archiveResult?.ok ?? true), backups: results, ...(archiveResult ? { archive: archiveResult } : {}) };
}
