import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { FINDINGS_ENV, type Finding } from './secret-scan';
import { removeTestTemplatesDir } from './templates';

/** jest globalTeardown: stops the sampler, then fails the run, naming each place a test secret showed. */
export default async function teardown(): Promise<void> {
  const bundles = (globalThis as { tidemarkTestBundles?: string }).tidemarkTestBundles;
  if (bundles) rmSync(bundles, { recursive: true, force: true });
  removeTestTemplatesDir();
  const sampler = (globalThis as { tidemarkSecretSampler?: ChildProcess }).tidemarkSecretSampler;
  if (sampler && sampler.exitCode === null && sampler.signalCode === null) {
    // The sampler was unref'd so it never holds jest open; waiting for it must hold the process, or
    // node exits here with this promise pending, the findings unread and exit code 0.
    sampler.ref();
    const exited = once(sampler, 'exit');
    sampler.kill('SIGTERM');
    await exited;
  }
  const file = process.env[FINDINGS_ENV];
  if (!file) return;
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  rmSync(dirname(file), { recursive: true, force: true });
  if (lines.length === 0) return;
  const findings = lines.map((l) => JSON.parse(l) as Finding & { test?: string });
  const distinct = [...new Map(findings.map((f) => [`${f.secret}\0${f.where}`, f])).values()];
  const shown = distinct.slice(0, 50).map((f) => `  - ${f.secret} in ${f.where}${f.test ? ` [${f.test}]` : ''}`);
  const more = distinct.length > 50 ? [`  … and ${distinct.length - 50} more`] : [];
  throw new Error(`secret scan: ${distinct.length} place(s) held a test secret (issue 11: no secret in arguments, environments, payloads, output or repository objects):\n${[...shown, ...more].join('\n')}`);
}
