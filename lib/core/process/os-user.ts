import { execFileSync } from 'node:child_process';

/** An OS user's ids, for running a server binary as that user when we are root. */
export interface OsUser {
  uid: number;
  gid: number;
}

/** Users found so far: their ids do not change while this process runs (a missing one is asked again). */
const found = new Map<string, OsUser>();

/**
 * The ids of the OS user `name`, or undefined when there is no such user. One `getent passwd`
 * (NSS, as `id` asks) the first time; a throwaway server's start asked four times (`id -u`, `id -g`,
 * twice), each a process started from a large one.
 */
export function lookupOsUser(name: string): OsUser | undefined {
  const known = found.get(name);
  if (known) return { ...known };
  try {
    const fields = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(':');
    const [uid, gid] = [Number(fields[2]), Number(fields[3])];
    if (fields.length < 7 || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
    found.set(name, { uid, gid });
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** As root, the ids of `name` (servers refuse or should not run as root); otherwise undefined. */
export function serverUserWhenRoot(name: string): OsUser | undefined {
  return process.getuid?.() === 0 ? lookupOsUser(name) : undefined;
}
