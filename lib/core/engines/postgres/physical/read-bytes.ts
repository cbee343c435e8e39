import { BackupNotFound } from '../../../errors';
import type { OpenedBackup } from '../../../repository/repository';

/**
 * One (small) object of a backup, verified, in memory: index chunks (≤ 4 MiB) and the index
 * directory. Where node has zstd, it decompresses them itself: a restore reads a few per backup of
 * its chain before its first pack, and a zstd process for each was a process start in that wait.
 */
export async function readObjectBytes(backup: OpenedBackup, name: string): Promise<Buffer> {
  const object = backup.manifest.objects.find((o) => o.name === name);
  if (!object) throw new BackupNotFound(`backup ${backup.manifest.id} has no object ${name} in its manifest`);
  const chunks: Buffer[] = [];
  for await (const c of await backup.read(object, undefined, { inProcessZstd: true })) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
