import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ToolFailed } from '../errors';
import type { OsUser } from './os-user';
import { runTool } from './tool';

/**
 * Initialised data directories kept as templates: a throwaway server (a drill's instance) copies
 * one instead of initialising its own. initdb takes about a second and mariadb-install-db two; a
 * copy of PostgreSQL's 39 MiB takes a tenth. A template is made once per server version and
 * options, in a temporary directory renamed into place with a marker inside, so a half-made one is
 * never used and two drills making it at once both end up with a whole one. The worker image makes
 * them at build time (TIDEMARK_TEMPLATES); elsewhere they live beside the drills' scratch dirs.
 *
 * Every copy is the same cluster to the server: PostgreSQL's system identifier is the template's.
 * That is what a throwaway instance may share, and why sources initialise their own; the test
 * harness copies templates too (test/harness/templates.ts), and a test about two different clusters
 * initialises the other one.
 */

const READY = 'template-ready';
/** `<template>.spare-<id>`: a whole copy of the template's data directory, waiting to be taken. */
const SPARE = '.spare-';
/** `<template>.making-spare-<id>`: a spare being copied (never taken; renamed to SPARE when whole). */
const MAKING_SPARE = '.making-spare-';

export interface TemplateSpec {
  /** Directory holding the templates. */
  readonly root: string;
  /** Names the server version and the options the data was made with: one template each. */
  readonly key: string;
  /** The data directory's name, inside the template and inside the destination. */
  readonly name: string;
  /** The OS user the data belongs to (the server's, when we run as root). */
  readonly user?: OsUser;
  /** Initialises a data directory at `join(parent, name)`; `parent` exists and belongs to `user`. */
  make(parent: string): Promise<void>;
}

/** The template's directory, made first when missing; `made` when this call made it. */
export async function ensureTemplate(spec: TemplateSpec): Promise<{ dir: string; made: boolean }> {
  const dir = join(spec.root, spec.key.replace(/[^A-Za-z0-9._-]/g, '_'));
  if (existsSync(join(dir, READY))) return { dir, made: false };
  await mkdir(spec.root, { recursive: true });
  const making = await mkdtemp(`${dir}.making-`);
  try {
    await chmod(making, 0o755);
    if (spec.user) await chown(making, spec.user.uid, spec.user.gid);
    await spec.make(making);
    await writeFile(join(making, READY), '');
    await rename(making, dir);
    return { dir, made: true };
  } catch (e) {
    await rm(making, { recursive: true, force: true });
    // Another drill renamed its whole template into place first: use that one.
    if (existsSync(join(dir, READY))) return { dir, made: false };
    // Templates only ever appear by a rename, marker inside: one without it was not made here.
    if (existsSync(dir)) throw new ToolFailed(`data-dir template ${dir} is incomplete (no ${READY} marker): remove it and a drill makes it again`, { cause: e });
    throw e;
  }
}

/**
 * Puts a fresh data directory at `join(parent, spec.name)` by copying the template (ownership
 * and modes kept), making the template first when there is none. With `spare`, takes a spare
 * first: a whole copy made ahead (makeSpare), renamed into place — instant, where copying
 * PostgreSQL's 966 files took 0.05–0.85 s on a busy disk (a drill's "throwaway instance" step);
 * it copies when there is none, or when the rename cannot go there (another file system). The
 * taker makes the next spare once its own work is done (a drill's teardown, outside its RTO).
 */
export async function copyFromTemplate(spec: TemplateSpec, parent: string, { spare = false } = {}): Promise<'spare' | 'copied' | 'made'> {
  const template = await ensureTemplate(spec);
  const dest = join(parent, spec.name);
  for (const waiting of spare ? await sparesOf(template.dir) : []) {
    try {
      await rename(waiting, dest);
      return 'spare';
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another taker was first
      break; // EXDEV and the like: a copy will do
    }
  }
  await runTool('cp', ['-a', join(template.dir, spec.name), dest]);
  return template.made ? 'made' : 'copied';
}

/**
 * Makes a spare of the template for copyFromTemplate's `spare`, unless one is waiting already: copied beside
 * it under a name no taker looks at, then renamed, so a spare is always whole. Returns whether it
 * made one.
 */
export async function makeSpare(spec: TemplateSpec): Promise<boolean> {
  const template = await ensureTemplate(spec);
  if ((await sparesOf(template.dir)).length > 0) return false;
  const id = randomBytes(6).toString('hex');
  const making = `${template.dir}${MAKING_SPARE}${id}`;
  try {
    await runTool('cp', ['-a', join(template.dir, spec.name), making]);
    await rename(making, `${template.dir}${SPARE}${id}`);
    return true;
  } catch (e) {
    await rm(making, { recursive: true, force: true });
    throw e;
  }
}

async function sparesOf(templateDir: string): Promise<string[]> {
  const prefix = `${basename(templateDir)}${SPARE}`;
  const names = await readdir(dirname(templateDir));
  return names.filter((n) => n.startsWith(prefix)).map((n) => join(dirname(templateDir), n));
}
