import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from './pid';

/**
 * A file that hands a secret to a child tool (a libpq passfile, a MySQL option file): readable by
 * this user only, in a private directory named after the owning process, removed when the session
 * closes. A process killed with SIGKILL cannot remove its own, so every new secret file first
 * removes those of owners that no longer exist: a password outlives its process only until the next
 * run on the machine (or the end of the task's storage, on Fargate).
 */
export class SecretFile {
  private constructor(
    readonly path: string,
    private readonly dir: string,
  ) {}

  static async write(kind: string, name: string, content: string): Promise<SecretFile> {
    await sweepOrphans(kind);
    const dir = await mkdtemp(join(tmpdir(), `${prefix(kind)}${process.pid}-`));
    const path = join(dir, name);
    try {
      await writeFile(path, content, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
    return new SecretFile(path, dir);
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

const prefix = (kind: string) => `tidemark-${kind}-`;

/** Removes `tidemark-<kind>-<pid>-*` directories whose process is gone. Never fails the caller. */
export async function sweepOrphans(kind: string, dir = tmpdir()): Promise<number> {
  const pattern = new RegExp(`^${prefix(kind)}(\\d+)-`);
  let removed = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true }).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}
