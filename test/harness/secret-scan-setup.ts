import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestBundles } from './bundles';
import { FINDINGS_ENV } from './secret-scan';
import { makeTestTemplatesDir } from './templates';

/**
 * jest globalSetup: the CLI and worker bundles the tests run (bundles.ts), the findings file every
 * worker appends to (its path in the environment the workers inherit), the run's data-dir
 * templates (templates.ts, also through the environment) and the process-table
 * sampler. globalTeardown (secret-scan-teardown.ts) removes the bundles, stops the sampler and
 * fails the run on any finding.
 */
export default function setup(): void {
  (globalThis as { tidemarkTestBundles?: string }).tidemarkTestBundles = buildTestBundles();
  makeTestTemplatesDir();
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-leak-scan-'));
  const file = join(dir, 'findings.jsonl');
  writeFileSync(file, '');
  process.env[FINDINGS_ENV] = file;
  // One small process: the suite shares two cores, and a sampler inside jest would wait on tests.
  const sampler = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'secret-sampler.ts'), String(process.pid)], {
    stdio: ['ignore', 'ignore', process.env.TIDEMARK_SCAN_DEBUG ? 'inherit' : 'ignore'],
    env: process.env,
  });
  sampler.unref();
  (globalThis as { tidemarkSecretSampler?: typeof sampler }).tidemarkSecretSampler = sampler;
}
