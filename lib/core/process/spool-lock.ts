import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../abort';
import { UsageError } from '../errors';
import { alive } from './pid';

/**
 * A streamer's spool belongs to one streamer process. One killed with SIGKILL leaves its reader
 * tool (pg_receivewal, mariadb-binlog) running, still writing into the spool — and holding the
 * replication slot or connection. The next streamer stops it, by the pid recorded, and only if that
 * process is still that tool writing into this spool, before it starts its own.
 */
const LOCK = 'streamer.pid';
const READER = 'reader.pid';

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

export interface SpoolLock {
  /** The reader tool now running (undefined once it exited). */
  recordReader(pid: number | undefined): Promise<void>;
  release(): Promise<void>;
}

export interface SpoolReader {
  /** Matches the reader tool's command line. */
  readonly command: RegExp;
  /** How it is asked to stop (it gets SIGKILL after 5 s). */
  readonly stopSignal: NodeJS.Signals;
}

/** Takes the spool for this process: refuses while another live streamer holds it, stops a left-over reader. */
export async function lockSpool(dir: string, reader: SpoolReader): Promise<SpoolLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lockPath = join(dir, LOCK);
  const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
  if (holder && holder !== process.pid && alive(holder)) {
    throw new UsageError(`another streamer (pid ${holder}) is using the spool ${dir}; stop it first`);
  }
  const orphan = Number((await readFile(join(dir, READER), 'utf8').catch(() => '')).trim());
  if (orphan && alive(orphan) && reader.command.test(commandLine(orphan)) && commandLine(orphan).includes(dir)) {
    process.kill(orphan, reader.stopSignal);
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
