import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Builds the worker the way containers/worker/Dockerfile does: its own `RUN npx esbuild …` line,
 * run here with the output redirected to `outfile`, so tests and benchmarks run the image's code
 * and follow the Dockerfile when its flags change. Returns `outfile`.
 */
export function bundleWorkerLikeDockerfile(root: string, outfile: string): string {
  const dockerfile = readFileSync(join(root, 'containers/worker/Dockerfile'), 'utf8');
  const line = /^RUN npx esbuild (.+)$/m.exec(dockerfile)?.[1];
  if (!line) throw new Error('containers/worker/Dockerfile has no "RUN npx esbuild ..." line');
  const args = line.trim().split(/\s+/);
  const out = args.findIndex((a) => a.startsWith('--outfile='));
  if (out < 0) throw new Error('the Dockerfile\'s esbuild line has no --outfile=');
  args[out] = `--outfile=${outfile}`;
  execFileSync(join(root, 'node_modules/.bin/esbuild'), args, { cwd: root, stdio: 'pipe' });
  return outfile;
}
