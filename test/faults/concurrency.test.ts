import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { runVerify } from '../../lib/core/commands/verify';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { BackupInProgress } from '../../lib/core/errors';
import { silentProgress as progress } from '../../lib/core/progress';
import { newBackupId } from '../../lib/core/repository/backup-id';
import { openStore } from '../../lib/core/repository/open-store';
import { Repository } from '../../lib/core/repository/repository';
import { loadSampleData } from '../../lib/local/sample-postgres';
import { usePostgres } from '../harness/postgres';
import { useS3 } from '../harness/s3';
import { startS3Proxy } from '../harness/s3-proxy';
import { spawnCli, useTempDir, writeConfig } from '../harness/tidemark';

/**
 * Two backups of one source never run at once (issue 11): the second refuses while the first holds
 * its lease, naming it; a claim renewed by a running backup keeps others out; a claim whose holder
 * is gone — a SIGKILLed process on this host at once, one elsewhere once its lease lapses — does not.
 */
describe('one backup of a source at a time', () => {
  const pg = usePostgres();
  const s3 = useS3();
  const tmp = useTempDir('tidemark-concurrency-');
  let folder: { path: string; config: TidemarkConfig };
  let onS3: TidemarkConfig;

  beforeAll(async () => {
    await pg.createDatabase('app');
    await loadSampleData(pg.url('app'), { pgbenchScale: 2, toastMegabytes: 60 });
    folder = writeConfig(tmp.path, 'folder.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
    onS3 = writeConfig(tmp.path, 's3.yaml', {
      repository: s3.repository('concurrency'),
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).config;
  }, 180_000);

  it.each([
    ['a folder', () => folder.config],
    ['S3', () => onS3],
  ])('of two started together on %s, exactly one runs; the other refuses naming it', async (_where, config) => {
    let before = (await runList(config(), 'app')).backups.length;
    let outcomes = await Promise.allSettled([1, 2, 3].map(() => runBackup(config(), 'app', { type: 'logical', progress })));
    // Under a loaded run one call's checks before it claims the source can outlast another's whole
    // (3 s) backup: the two then ran one after the other, which is allowed, and say nothing about
    // two at once. Such a trio is tried again (at most twice); the assertions below are the last one's.
    for (let retry = 0; retry < 2 && outcomes.filter((o) => o.status === 'fulfilled').length > 1; retry++) {
      before = (await runList(config(), 'app')).backups.length;
      outcomes = await Promise.allSettled([1, 2, 3].map(() => runBackup(config(), 'app', { type: 'logical', progress })));
    }
    const ok = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect(r.reason).toBeInstanceOf(BackupInProgress);
      expect((r.reason as Error).message).toMatch(/^source 'app': backup \d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6} is still running \(its lease was renewed at .*\); one backup of a source runs at a time/);
    }
    expect((await runList(config(), 'app')).backups).toHaveLength(before + 1);
    expect((await runVerify(config(), 'app', { progress })).ok).toBe(true);
    // Given up at once: the next backup runs.
    await runBackup(config(), 'app', { type: 'logical', progress });
  });

  it('a running CLI backup keeps renewing its claim; once it is SIGKILLed on this host the next backup runs at once', async () => {
    // The CLI backs up to S3 through a proxy that holds its dump upload back: a backup that runs for a while.
    let holding = true;
    const proxy = await startS3Proxy(s3.endpoint, {
      onRequest: async (r) => {
        while (holding && (r.operation === 'PutObject' || r.operation === 'UploadPart') && r.key.endsWith('/dump') && !r.signal.aborted) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
    });
    const slow = writeConfig(tmp.path, 'slow.yaml', {
      repository: { ...s3.repository('slow'), endpoint: proxy.endpoint },
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    });
    const store = openStore(s3.repository('slow'));
    const child = spawnCli(['backup', 'app', '--type', 'logical', '--config', slow.path], { TIDEMARK_LEASE_RENEW_SECONDS: '1' });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      // Renewals appear while it runs.
      const renewals = async () => (await store.list('app/backups/')).objects.filter((o) => /\/lease\.\d{6}\.json$/.test(o.key));
      for (let i = 0; i < 100 && (await renewals()).length < 2; i++) await new Promise((r) => setTimeout(r, 200));
      const [renewal] = await renewals();
      expect(renewal).toBeDefined();
      const running = renewal.key.split('/')[2];
      await expect(runBackup(slow.config, 'app', { type: 'logical', progress })).rejects.toThrow(new RegExp(`backup ${running.replace('.', '\\.')} is still running`));
    } finally {
      child.kill('SIGKILL');
      await exited;
      holding = false;
    }
    await runBackup(slow.config, 'app', { type: 'logical', progress });
    await proxy.close();
  });

  it('a claim held elsewhere keeps others out until its lease lapses', async () => {
    // A backup running on another host: its lease, written just now.
    const id = newBackupId(new Date());
    const dir = join(tmp.path, 'repo', 'app', 'backups', id);
    mkdirSync(dir, { recursive: true });
    const lease = join(dir, 'lease.json');
    writeFileSync(lease, JSON.stringify({ format: 'tidemark.lease', version: 1, backup: id, startedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 86_400_000).toISOString(), host: 'worker-on-fargate', pid: 1 }));
    await expect(runBackup(folder.config, 'app', { type: 'logical', progress })).rejects.toThrow(BackupInProgress);
    // Not renewed for 3 minutes: its holder is gone, and the claim with it.
    const old = new Date(Date.now() - 3 * 60_000 - 1000);
    utimesSync(lease, old, old);
    await runBackup(folder.config, 'app', { type: 'logical', progress });
  });
  it('the first backup of a new repository that loses the race to create it starts again against the marker that won', async () => {
    const config = writeConfig(tmp.path, 'race.yaml', {
      repository: `file://${tmp.path}/race-repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: { app: { engine: 'postgres', url: pg.url('app') } },
    }).config;
    // Another process (a streamer started with the backup) creates the repository after the backup
    // found none and bound its data key to the marker it meant to write, before it wrote that.
    const begin = Repository.prototype.beginBackup;
    let raced = 0;
    const spy = jest.spyOn(Repository.prototype, 'beginBackup').mockImplementation(async function (this: Repository, ...args: Parameters<typeof begin>) {
      const writer = await begin.apply(this, args);
      if (raced++ === 0) await (await Repository.open(config)).checkKey();
      return writer;
    });
    const notes: string[] = [];
    try {
      const made = await runBackup(config, 'app', { type: 'logical', progress: { ...progress, note: (m: string) => void notes.push(m) } });
      expect(notes.filter((n) => /another process created/.test(n))).toEqual([
        `another process created the repository file://${tmp.path}/race-repo at the same moment: starting the backup again`,
      ]);
      expect((await runList(config, 'app')).backups.map((b) => b.id)).toEqual([made.id]);
      expect((await runVerify(config, 'app', { progress })).ok).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });
});
