import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { once } from 'node:events';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runList } from '../../lib/core/commands/list';
import { runRetention } from '../../lib/core/commands/retention';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { silentProgress as progress } from '../../lib/core/progress';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { descendants, waitForExit } from '../harness/proc';
import { useS3 } from '../harness/s3';
import { runCli, spawnCli, useTempDir, writeConfig } from '../harness/tidemark';
import { random } from './fault-injector';
import { expectKilledBackupsHarmless, killCount, signalCliAt, testTimeout } from './kill-moments';

/**
 * Kills against an S3 repository (issue 11; the folder repository has its own files): logical and
 * physical backups SIGKILLed while they upload to s3rver, a restore from it SIGKILLed, and
 * retention afterwards. The same promises as on a folder: never a listed backup that does not
 * verify, the next backup works, a killed restore leaves its target absent, empty or marked
 * interrupted, and two days on retention removes every object the dead runs stored. What S3 itself
 * keeps of an upload killed mid-flight (the parts of an unfinished multipart upload) is not an
 * object: the bucket's lifecycle rule (AbortIncompleteUploads, lib/infra/backup-vault.ts) removes it.
 */
const SEED = 1206;

describe(`SIGKILL against an S3 repository (seed ${SEED})`, () => {
  const pg = usePostgres();
  const s3 = useS3();
  const tmp = useTempDir('tidemark-kill-s3-');
  let cfg: { path: string; config: TidemarkConfig };
  const backup = (type: 'logical' | 'full') => ({ config: cfg.config, configPath: cfg.path, source: 'app', type });
  const listed = async () => (await runList(cfg.config, 'app')).backups.map((b) => b.id);
  /** Backup ids that have objects in the bucket, listed or not. */
  async function storedIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    let token: string | undefined;
    do {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'kill/app/backups/', ContinuationToken: token }));
      for (const o of page.Contents ?? []) ids.add(o.Key!.split('/')[3]);
      token = page.NextContinuationToken;
    } while (token);
    return ids;
  }

  beforeAll(async () => {
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 1, toastMegabytes: 10 });
    cfg = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: s3.repository('kill'),
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
  }, 180_000);

  it('logical backups: never a listed backup that does not verify, and the next backup works', async () => {
    await expectKilledBackupsHarmless(backup('logical'), { kills: killCount(3), seed: SEED });
  }, testTimeout(600_000));

  it('physical full backups: the same', async () => {
    await expectKilledBackupsHarmless(backup('full'), { kills: killCount(2), seed: SEED + 1 });
  }, testTimeout(600_000));

  it('a physical restore from S3 killed: the data directory is absent, empty or marked interrupted; --force then restores it whole', async () => {
    const id = (await runList(cfg.config, 'app')).backups.filter((b) => b.type === 'full').pop()!.id;
    const dir = join(tmp.path, 'restored');
    const args = (force: boolean) => ['restore', 'app', '--backup', id, '--to', dir, ...(force ? ['--force'] : []), '--config', cfg.path];
    const timed = await runCli(args(false));
    expect([timed.code, timed.stderr]).toEqual([0, expect.any(String)]);
    const next = random(SEED + 2);
    let force = false;
    for (let i = 0; i < killCount(2); i++) {
      if (!force) rmSync(dir, { recursive: true, force: true });
      const run = await signalCliAt(args(force), next() * timed.seconds * 1000, 'SIGKILL');
      expect(await waitForExit(run.orphans)).toEqual([]);
      const entries = existsSync(dir) ? readdirSync(dir) : [];
      const state = entries.length === 0 ? 'empty' : entries.includes('.tidemark-restore') ? 'interrupted' : 'whole';
      expect(run.code !== 0 || state === 'whole' ? 'ok' : { kill: i, exit: run.code, state }).toBe('ok');
      force = state === 'interrupted';
    }
    // The last kill may have come after the end (a whole directory): that one is not replaced by --force.
    if (!force) rmSync(dir, { recursive: true, force: true });
    const finished = await runCli(args(force));
    expect([finished.code, finished.stderr]).toEqual([0, expect.any(String)]);
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['PG_VERSION', 'base', 'global']));
    expect(readdirSync(dir)).not.toContain('.tidemark-restore');
  }, testTimeout(300_000));

  it('two days on, retention removes every object the killed runs stored and nothing listed; everything verifies', async () => {
    // One more run, killed once its first object is in the bucket: the seeded kills above may all
    // have fallen where a run leaves nothing there (before its lease; an upload in flight is not an object).
    const before = await storedIds();
    const child = spawnCli(['backup', 'app', '--type', 'full', '--config', cfg.path]);
    child.stdout!.resume();
    child.stderr!.resume();
    const exited = once(child, 'exit');
    let ended = false;
    void exited.then(() => (ended = true));
    while (!ended && [...(await storedIds())].every((id) => before.has(id))) await new Promise((r) => setTimeout(r, 20));
    const tools = descendants(child.pid!);
    child.kill('SIGKILL');
    await exited;
    expect(await waitForExit(tools)).toEqual([]);
    const kept = await listed();
    const dead = [...(await storedIds())].filter((id) => !kept.includes(id));
    expect(dead.length).toBeGreaterThan(0);
    await runRetention(cfg.config, 'app', { apply: true, now: new Date(Date.now() + 49 * 3_600_000) });
    expect([...(await storedIds())].sort()).toEqual([...kept].sort());
    expect(await listed()).toEqual(kept);
    expect((await runVerify(cfg.config, 'app', { progress })).ok).toBe(true);
  }, 120_000);
});
