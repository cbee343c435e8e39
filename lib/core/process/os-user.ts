import { execFileSync } from 'node:child_process';

/** An OS user's ids, for running a server binary as that user when we are root. */
export interface OsUser {
  uid: number;
  gid: number;
}

/** The ids of the OS user `name`, or undefined when there is no such user. */
export function lookupOsUser(name: string): OsUser | undefined {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

/** As root, the ids of `name` (servers refuse or should not run as root); otherwise undefined. */
export function serverUserWhenRoot(name: string): OsUser | undefined {
  return process.getuid?.() === 0 ? lookupOsUser(name) : undefined;
}
