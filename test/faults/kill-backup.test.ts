import type { TidemarkConfig } from '../../lib/core/config/schema';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { useTempDir, writeConfig } from '../harness/tidemark';
import { expectKilledBackupsHarmless, expectTerminatedBackupsClean, killCount, SIGTERM_EXIT_SECONDS, SOAK, testTimeout } from './kill-moments';

/**
 * A logical backup SIGKILLed at moments drawn across its whole run — start-up, the key check, the
 * dump, the upload, the commit (issue 11): never a listed backup that does not verify, the killed
 * run never keeps the next one out, and the next backup works. 20 moments under TIDEMARK_SOAK=1,
 * fewer in CI. SIGTERM: out within 10 s, nothing half committed, its tools gone.
 */
const SEED = 1201;
const KILLS = killCount(6);
const TERMS = SOAK ? 6 : 1;

describe(`SIGKILL of a logical backup at ${KILLS} random moments, SIGTERM at ${TERMS} (seed ${SEED})`, () => {
  const pg = usePostgres();
  const tmp = useTempDir('tidemark-kill-');
  let cfg: { path: string; config: TidemarkConfig };
  const backup = () => ({ config: cfg.config, configPath: cfg.path, source: 'app', type: 'logical' as const });

  beforeAll(async () => {
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 10 });
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
  }, 180_000);

  it('never lists a backup that does not verify, and the next backup always works', async () => {
    await expectKilledBackupsHarmless(backup(), { kills: KILLS, seed: SEED });
  }, testTimeout(600_000));

  it(`SIGTERM: out within ${SIGTERM_EXIT_SECONDS} s, nothing half committed, its tools gone, the next backup works`, async () => {
    await expectTerminatedBackupsClean(backup(), { terms: TERMS, seed: SEED + 1 });
  }, testTimeout(300_000));
});
