import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The end-of-suite secrets scan (issue 11): no test password or key may appear in a synthesized
 * template, a state-machine definition, an execution's input or output, a tool's environment or
 * arguments, a line the CLI printed, or a repository object. Hooks across the harness call
 * `scanText`/`scanRepositories`; the sampler (secret-sampler.ts) watches the process table; each
 * finding is appended to the file named by TIDEMARK_SCAN_FINDINGS, and the suite's globalTeardown
 * (secret-scan-teardown.ts) fails the run when the file is not empty. A finding names where and
 * which secret, never the secret itself.
 */

/**
 * The secrets the tests hand to Tidemark, by where they come from. A new test secret belongs here
 * (grep the tests for `password:` and `_KEY =`); short or common strings ('S3RVER') would only
 * make noise.
 */
export const TEST_SECRETS: Readonly<Record<string, string>> = {
  'TEST_KEY (test/harness/tidemark.ts)': 'tidemark-test-key-0123456789abcdefghijklmnop',
  'TIDEMARK_OTHER_KEY (integration tests)': 'another-key-that-is-long-enough-0123456789',
  'TIDEMARK_WRONG_KEY (postgres-physical.test.ts)': 'a-different-key-0123456789abcdefghijklmnopq',
  'physical source password (postgres-physical.test.ts)': "phys-Pässword:with\\odd'chars",
  'MySQL source password (mysql-logical.test.ts)': 'it\'s a "secret" \\ pw',
  'worker source password (worker-entry.test.ts)': 'db-password-never-logged-7f3a9c',
  'MariaDB stream password (worker-mysql-stream.test.ts)': 'maria-secret-never-logged-51c2e8',
  'source password (postgres-password.test.ts)': 'SrcPw9f3Kq7Zt1xJ',
  'target password (postgres-password.test.ts)': 'TgtPw4m8Lc2Wn6yH',
  'wrong password (postgres-password.test.ts)': 'WrongPw5s0Bd8Ve3',
  'drill check password (drill-worker.test.ts)': 'drill-check-password-9c1e77',
  'synthesized password (secrets-synth.test.ts)': 'synth-password-must-stay-in-secrets-manager-4d1f',
};

/** Where findings go; set by the globalSetup for every worker. */
export const FINDINGS_ENV = 'TIDEMARK_SCAN_FINDINGS';

export interface Finding {
  readonly where: string;
  readonly secret: string;
}

/** Several spellings a secret travels in: as is, JSON-escaped, base64 and URL-encoded. */
function needles(): { readonly name: string; readonly bytes: Buffer }[] {
  return Object.entries(TEST_SECRETS).flatMap(([name, value]) => {
    const forms = new Set([value, JSON.stringify(value).slice(1, -1), Buffer.from(value).toString('base64'), encodeURIComponent(value)]);
    return [...forms].map((form) => ({ name, bytes: Buffer.from(form) }));
  });
}
const NEEDLES = needles();

/** The secrets that occur in `data`, by name. */
export function secretsIn(data: string | Buffer): string[] {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return [...new Set(NEEDLES.filter((n) => buf.includes(n.bytes)).map((n) => n.name))];
}

export function recordFinding(finding: Finding): void {
  const file = process.env[FINDINGS_ENV];
  const line = `${JSON.stringify({ ...finding, at: new Date().toISOString(), test: currentTest() })}\n`;
  if (file) appendFileSync(file, line);
  else process.stderr.write(`secret scan (no ${FINDINGS_ENV}): ${line}`);
}

/** Records a finding for every secret in `data`; `where` says what it was (and whose). */
export function scanText(where: string, data: string | Buffer | unknown): void {
  const text = typeof data === 'string' || Buffer.isBuffer(data) ? data : safeJson(data);
  for (const secret of secretsIn(text)) recordFinding({ where, secret });
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Marks a repository: the folder holding it has this file at its root (lib/core/repository/layout.ts). */
const REPOSITORY_MARKER = 'tidemark.json';

/**
 * Every file of every repository under `root` (a folder with a tidemark.json, at any depth): its
 * objects are encrypted, so a secret's plaintext in one is a leak. Other files under `root` (a key
 * file a test wrote on purpose, a config) are not Tidemark's output and are skipped.
 */
export function scanRepositories(root: string, label: string): void {
  const walk = (dir: string, inRepository: boolean) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // removed meanwhile, or not ours to read (a server's data directory)
    }
    const isRepository = inRepository || names.includes(REPOSITORY_MARKER);
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(path, isRepository);
      else if (isRepository && st.isFile()) {
        for (const secret of secretsIn(readFileSync(path))) recordFinding({ where: `${label}: repository object ${path}`, secret });
      }
    }
  };
  walk(root, false);
}

/** Every file under `root`, for stores that hold only Tidemark's objects (an s3rver directory). */
export function scanTree(root: string, label: string): void {
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        const st = statSync(path);
        if (st.isDirectory()) walk(path);
        else if (st.isFile()) for (const secret of secretsIn(readFileSync(path))) recordFinding({ where: `${label}: ${path}`, secret });
      } catch {
        // gone meanwhile
      }
    }
  };
  walk(root);
}

function currentTest(): string | undefined {
  const state = (globalThis as { expect?: { getState?: () => { testPath?: string; currentTestName?: string } } }).expect?.getState?.();
  if (!state) return undefined;
  return [state.testPath?.replace(/^.*\/test\//, 'test/'), state.currentTestName].filter(Boolean).join(' › ');
}
