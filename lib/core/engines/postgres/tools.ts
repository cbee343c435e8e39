import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ToolFailed } from '../../errors';
import { runTool } from '../../process/tool';

/** Debian/Ubuntu keep one directory per major version; other layouts use TIDEMARK_PG_BINDIR. */
const VERSIONED_ROOT = '/usr/lib/postgresql';

export type PostgresTool =
  | 'pg_dump'
  | 'pg_restore'
  | 'pg_dumpall'
  | 'psql'
  | 'initdb'
  | 'pg_ctl'
  | 'pgbench'
  | 'pg_basebackup'
  | 'pg_receivewal'
  | 'pg_verifybackup'
  | 'pg_waldump';

export interface PostgresBinDir {
  dir: string;
  /** Major version, or 0 when TIDEMARK_PG_BINDIR points somewhere that does not name it. */
  major: number;
}

// Keyed by the override so a test (or a user) changing TIDEMARK_PG_BINDIR is honoured.
let cached: { override: string | undefined; result: PostgresBinDir } | undefined;

function installedMajors(): number[] {
  if (!existsSync(VERSIONED_ROOT)) return [];
  return readdirSync(VERSIONED_ROOT)
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => b - a);
}

const dirOf = (major: number) => join(VERSIONED_ROOT, String(major), 'bin');

function missing(what: string): ToolFailed {
  return new ToolFailed(`${what}; run scripts/setup.sh (or set TIDEMARK_PG_BINDIR)`);
}

/** The newest installed PostgreSQL bin directory, or TIDEMARK_PG_BINDIR when set. */
export function findPostgresBinDir(): PostgresBinDir {
  const override = process.env.TIDEMARK_PG_BINDIR || undefined;
  if (cached && cached.override === override) return cached.result;
  let result: PostgresBinDir | undefined;
  if (override) {
    if (!existsSync(override)) throw new ToolFailed(`TIDEMARK_PG_BINDIR=${override} does not exist`);
    const named = /(?:^|\/)(\d+)(?:\/bin)?\/?$/.exec(override);
    result = { dir: override, major: named ? Number(named[1]) : 0 };
  } else {
    const major = installedMajors().find((m) => existsSync(dirOf(m)));
    if (major !== undefined) result = { dir: dirOf(major), major };
  }
  if (!result) throw missing(`PostgreSQL not found: no ${VERSIONED_ROOT}/<version>/bin`);
  cached = { override, result };
  return result;
}

/** Every installed server's bin directory (one with initdb), newest first; TIDEMARK_PG_BINDIR alone when set. */
export function installedServerBinDirs(): string[] {
  const override = process.env.TIDEMARK_PG_BINDIR || undefined;
  const dirs = override ? [override] : installedMajors().map(dirOf);
  return dirs.filter((dir) => existsSync(join(dir, 'initdb')));
}

/**
 * Absolute path of a PostgreSQL binary. The newest major wins; an older major is used only when the
 * newest lacks the binary (a newer client-only package next to an older server is common).
 * An explicit TIDEMARK_PG_BINDIR is never second-guessed.
 */
export function pgBin(name: PostgresTool | string): string {
  const { dir } = findPostgresBinDir();
  const candidates = process.env.TIDEMARK_PG_BINDIR ? [dir] : [dir, ...installedMajors().map(dirOf)];
  const found = candidates.map((d) => join(d, name)).find((path) => existsSync(path));
  if (!found) throw missing(`PostgreSQL tool ${name} not found in ${[...new Set(candidates)].join(', ')}`);
  return found;
}

/** Major version of a PostgreSQL client tool ("pg_dump (PostgreSQL) 15.19 (Debian …)" → 15). */
export async function toolMajor(binary: string): Promise<number> {
  const out = await runTool(binary, ['--version']);
  const m = /\(PostgreSQL\)\s+(\d+)/.exec(out);
  if (!m) throw new ToolFailed(`cannot tell the version of ${binary} from: ${out.trim()}`);
  return Number(m[1]);
}
