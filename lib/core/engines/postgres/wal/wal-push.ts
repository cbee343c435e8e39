import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ZstdOptions } from '../../../pipeline/zstd';
import { IntegrityError, StorageError, UsageError } from '../../../errors';
import type { Repository } from '../../../repository/repository';
import { WalArchive } from './wal-archive';
import {
  archiveNameOfWalFile,
  formatLsn,
  HISTORY_NAME,
  isValidSegmentBytes,
  parseSegmentName,
  parseTimelineHistory,
  partialArchiveName,
  PARTIAL_FILE_NAME,
  partialPrefix,
  SEGMENT_NAME,
  segmentStartLsn,
} from './wal-names';
import { newestPartialOf } from './wal-inventory';

export type WalPushResult = { readonly name: string; readonly outcome: 'archived' | 'already-archived' };

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const c of createReadStream(path)) hash.update(c as Buffer);
  return hash.digest('hex');
}

/**
 * `tidemark wal-push %p` as archive_command: archives one file PostgreSQL finished (a segment, a
 * timeline history, a backup history file, or the `.partial` a promotion leaves). Idempotent, as
 * archive_command must be: PostgreSQL retries after a crash, so a file already archived with the
 * same content succeeds; different content under the same name fails loudly (exit 1, and
 * PostgreSQL keeps the file and retries, so the operator sees it in the server log).
 */
export async function pushWalFile(repository: Repository, source: string, path: string, compression: ZstdOptions): Promise<WalPushResult> {
  const file = basename(path);
  const archive = new WalArchive(repository, source);
  let facts;
  try {
    facts = await stat(path);
  } catch {
    throw new UsageError(`wal-push: ${path} does not exist or cannot be read`);
  }
  if (!facts.isFile()) throw new UsageError(`wal-push: ${path} is not a file`);
  const history = HISTORY_NAME.test(file) ? parseTimelineHistory(await readFile(path, 'utf8')) : undefined;
  const attributes: Readonly<Record<string, string>> | undefined = SEGMENT_NAME.test(file) && isValidSegmentBytes(facts.size)
    ? { end: formatLsn(segmentStartLsn(parseSegmentName(file, facts.size).segno + 1, facts.size)), at: facts.mtime.toISOString() }
    : history // the switch point, readable without a key (wal-inventory.ts follows timelines with it)
      ? { end: history.switchLsn, at: facts.mtime.toISOString(), parent: history.parent }
      : undefined;

  let name = archiveNameOfWalFile(file);
  if (name === undefined && PARTIAL_FILE_NAME.test(file)) {
    // A promoted standby archives the old timeline's last segment as .partial: store it as the next generation.
    const segment = file.replace(/\.partial$/, '');
    const newest = newestPartialOf((await archive.objects.list(partialPrefix(segment))).map((o) => o.name), segment);
    if (newest && (await archive.objects.plaintextSha256(newest.name)) === (await fileSha256(path))) return { name: newest.name, outcome: 'already-archived' };
    name = partialArchiveName(segment, (newest?.generation ?? 0) + 1);
  }
  if (name === undefined) {
    throw new UsageError(`wal-push: ${file} is not a WAL segment, .partial, .history or .backup file name`);
  }
  if (await archive.objects.has(name)) return alreadyArchived(archive, name, path);
  const writer = await archive.objects.writer({ epoch: 'newest' });
  try {
    await writer.writeFile(name, path, { compression, ...(attributes ? { attributes } : {}) });
  } catch (e) {
    if (e instanceof StorageError && e.code === 'ObjectExists') return alreadyArchived(archive, name, path); // a concurrent push
    throw e;
  }
  return { name, outcome: 'archived' };
}

async function alreadyArchived(archive: WalArchive, name: string, path: string): Promise<WalPushResult> {
  const [archived, local] = await Promise.all([archive.objects.plaintextSha256(name), fileSha256(path)]);
  if (archived !== local) {
    throw new IntegrityError(
      `wal-push: ${archive.objects.keyOf(name)} is already archived with DIFFERENT content than ${path}; refusing to overwrite (two servers archiving into one source, or a damaged file?)`,
    );
  }
  return { name, outcome: 'already-archived' };
}
