import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../../../abort';
import { UsageError } from '../../../errors';

/**
 * The spool belongs to one streamer. A streamer killed with SIGKILL leaves its mariadb-binlog
 * running, still appending to the spool: the next streamer stops it (by the pid recorded, and
 * only if that process is still a binlog reader writing into this spool) before it starts its own.
 * (The same shape as the pg-wal branch's spool.ts lockSpool.)
 */
const LOCK = 'streamer.pid';
const READER = 'reader.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

export interface SpoolLock {
  recordReader(pid: number | undefined): Promise<void>;
  release(): Promise<void>;
}

export async function lockBinlogSpool(dir: string): Promise<SpoolLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lockPath = join(dir, LOCK);
  const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
  if (holder && holder !== process.pid && alive(holder)) {
    throw new UsageError(`another streamer (pid ${holder}) is using the spool ${dir}; stop it first`);
  }
  const orphan = Number((await readFile(join(dir, READER), 'utf8').catch(() => '')).trim());
  if (orphan && alive(orphan) && /mariadb-binlog|mysqlbinlog/.test(commandLine(orphan)) && commandLine(orphan).includes(dir)) {
    process.kill(orphan, 'SIGTERM');
    for (let i = 0; i < 50 && alive(orphan); i++) await sleep(100);
    if (alive(orphan)) process.kill(orphan, 'SIGKILL');
  }
  await writeFile(lockPath, `${process.pid}\n`);
  return {
    recordReader: async (pid) => {
      if (pid === undefined) await unlink(join(dir, READER)).catch(() => undefined);
      else await writeFile(join(dir, READER), `${pid}\n`);
    },
    release: async () => {
      await rm(join(dir, READER), { force: true });
      await rm(lockPath, { force: true });
    },
  };
}
