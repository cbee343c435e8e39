import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The repository root: the nearest folder at or above `from` holding `marker` (a path relative to
 * the root). Walking up makes asset paths resolve from lib/infra (tsx, jest) and from the compiled
 * dist/lib/infra alike. Throws with `what` named when no folder has it.
 */
export function projectRoot(marker: string, what: string, from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, marker))) return dir;
    if (dirname(dir) === dir) throw new Error(`${what}: no ${marker} in ${from} or any folder above; run from a Tidemark checkout`);
  }
}
