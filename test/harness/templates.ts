import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Data-dir templates (lib/core/process/data-dir-template.ts) shared by the whole jest run: a
 * throwaway server the harness starts copies an initialised data directory (~0.1 s) instead of
 * running initdb or mariadb-install-db (~0.6 s alone, 1.1-1.2 s on average while the suite runs:
 * 59 PostgreSQL and 28 MariaDB initialisations in one run, 2026-12-03). Made once per server
 * version and options by whichever test needs one first; globalSetup makes the directory and
 * globalTeardown removes it.
 *
 * Every PostgreSQL cluster copied from one template has the same system identifier. A test about
 * two different clusters starts the other one with `templates: undefined` (initdb).
 */
export const TEMPLATES_ENV = 'TIDEMARK_TEST_TEMPLATES';

/** The run's template directory, or undefined outside a jest run with the global setup (then: initdb). */
export function testTemplates(): string | undefined {
  return process.env[TEMPLATES_ENV] || undefined;
}

export function makeTestTemplatesDir(): void {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-test-templates-'));
  chmodSync(dir, 0o755); // the servers' OS user (when tests run as root) makes templates inside
  process.env[TEMPLATES_ENV] = dir;
}

export function removeTestTemplatesDir(): void {
  const dir = process.env[TEMPLATES_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
}
