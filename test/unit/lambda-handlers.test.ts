import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { handler as recordResult } from '../../lambda/record-result/index';
import { handler as rpoCheck } from '../../lambda/rpo-check/index';
import { newestRestorablePoint, secondsSince } from '../../lib/core/commands/newest-point';
import type { Engine } from '../../lib/core/config/schema';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { ConfigError, UsageError } from '../../lib/core/errors';
import { FileStore } from '../../lib/core/repository/file-store';
import { manifestKey } from '../../lib/core/repository/layout';
import type { BackupManifest, BackupType } from '../../lib/core/repository/manifest';
import { openStore } from '../../lib/core/repository/open-store';
import { Repository } from '../../lib/core/repository/repository';
import type { ObjectStore } from '../../lib/core/repository/storage';
import { TEST_KEY, useTempDir } from '../harness/tidemark';
import { useS3 } from '../harness/s3';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';

const keys = new LocalKeyProvider(TEST_KEY, 'test key');

/** Writes a committed backup; ids carry the start time to the millisecond, so keep them apart. */
async function commitBackup(
  repo: Repository,
  source: string,
  options: { type?: BackupType; bytes?: number; restorePoint?: string; engine?: Engine } = {},
): Promise<BackupManifest> {
  await sleep(3);
  const writer = await repo.beginBackup(source, options.engine ?? 'postgres', options.type ?? 'logical');
  if (options.bytes) await writer.writeObject('dump', Readable.from([randomBytes(options.bytes)]), { compression: false });
  return writer.commit({ time: options.restorePoint ?? new Date().toISOString() }, TEST_PG_LOGICAL_DETAILS);
}

/** A backup that never finished: objects, no manifest. */
async function abandonBackup(repo: Repository, source: string): Promise<string> {
  await sleep(3);
  const writer = await repo.beginBackup(source, 'postgres', 'logical');
  await writer.writeObject('dump', Readable.from([Buffer.from('partial')]), { compression: false });
  return writer.id;
}

/** Counts what a store is asked, to prove the newest point does not read the whole catalog. */
function counting(store: ObjectStore): { store: ObjectStore; calls: { list: number; getBytes: number } } {
  const calls = { list: 0, getBytes: 0 };
  const counted: ObjectStore = {
    description: store.description,
    put: (...a) => store.put(...a),
    get: (...a) => store.get(...a),
    head: (...a) => store.head(...a),
    delete: (...a) => store.delete(...a),
    list: (...a) => (calls.list++, store.list(...a)),
    getBytes: (...a) => (calls.getBytes++, store.getBytes(...a)),
  };
  return { store: counted, calls };
}

describe('newestRestorablePoint (file:// repository)', () => {
  const dir = useTempDir('tidemark-newest-');
  let repo: Repository;
  beforeAll(() => {
    repo = new Repository(new FileStore(dir.path), keys);
  });

  test('a source without backups has no restorable point', async () => {
    expect(await newestRestorablePoint(repo, 'nothing')).toBeNull();
  });

  test('reads one manifest, the newest, however many backups there are', async () => {
    // GIVEN five committed backups
    const made: BackupManifest[] = [];
    for (let i = 0; i < 5; i++) made.push(await commitBackup(repo, 'many', { bytes: 100 + i }));
    const { store, calls } = counting(repo.store);

    // WHEN
    const point = await newestRestorablePoint(store, 'many');

    // THEN
    const newest = made[made.length - 1];
    expect(point).toMatchObject({ time: newest.restorePoint.time, backupId: newest.id, passedOver: { incomplete: [], problems: [] } });
    expect(point?.backup.storedBytes).toBe(newest.storedBytes);
    expect(calls).toEqual({ list: 1, getBytes: 1 });
  });

  test('passes over newer folders without a manifest and damaged manifests', async () => {
    // GIVEN a committed backup, then a damaged one, then one that never finished
    const committed = await commitBackup(repo, 'messy');
    await sleep(3);
    const damaged = await repo.beginBackup('messy', 'postgres', 'logical');
    await repo.store.put(manifestKey('messy', damaged.id), Buffer.from('{"manifest": "not really"}'));
    const abandoned = await abandonBackup(repo, 'messy');
    const { store, calls } = counting(repo.store);

    // WHEN
    const point = await newestRestorablePoint(store, 'messy');

    // THEN
    expect(point?.backupId).toBe(committed.id);
    expect(point?.passedOver.incomplete).toEqual([abandoned]);
    expect(point?.passedOver.problems).toEqual([{ id: damaged.id, reason: expect.stringMatching(/damaged/) }]);
    expect(calls).toEqual({ list: 1, getBytes: 3 });
  });

  test('only folders that never finished: no restorable point', async () => {
    await abandonBackup(repo, 'unfinished');
    expect(await newestRestorablePoint(repo, 'unfinished')).toBeNull();
  });

  test('works on a bare store, without a key', async () => {
    const made = await commitBackup(repo, 'bare', { restorePoint: '2026-11-24T03:00:00.000Z' });
    const point = await newestRestorablePoint(new FileStore(dir.path), 'bare');
    expect(point).toMatchObject({ time: '2026-11-24T03:00:00.000Z', backupId: made.id });
  });

  test('secondsSince counts whole seconds and never goes negative', () => {
    const now = Date.parse('2026-11-24T04:00:00.000Z');
    expect(secondsSince('2026-11-24T03:00:00.400Z', now)).toBe(3600);
    expect(secondsSince('2026-11-24T04:00:05.000Z', now)).toBe(0);
  });
});

describe('Lambda handlers (s3rver)', () => {
  const s3 = useS3();
  const saved = { ...process.env };
  let repo: Repository;
  let logs: { emf: Record<string, unknown>[]; warn: string[]; error: string[] };

  beforeAll(() => {
    repo = new Repository(openStore(s3.repository('tidemark')), keys);
    process.env.TIDEMARK_REPOSITORY_URL = `s3://${s3.bucket}/tidemark`;
    process.env.TIDEMARK_S3_ENDPOINT = s3.endpoint;
    process.env.TIDEMARK_METRICS_NAMESPACE = 'TidemarkTest';
    process.env.AWS_REGION = 'us-east-1';
  });
  afterAll(() => {
    process.env = saved;
  });
  beforeEach(() => {
    logs = { emf: [], warn: [], error: [] };
    jest.spyOn(console, 'log').mockImplementation((line: string) => void logs.emf.push(JSON.parse(line) as Record<string, unknown>));
    jest.spyOn(console, 'warn').mockImplementation((line: string) => void logs.warn.push(line));
    jest.spyOn(console, 'error').mockImplementation((line: string) => void logs.error.push(line));
  });
  afterEach(() => jest.restoreAllMocks());

  /** The metrics an EMF line declares, with their units and values. */
  function metricsOf(line: Record<string, unknown>): Record<string, { unit: string; value: unknown }> {
    const directive = (line._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] })
      .CloudWatchMetrics[0];
    expect(directive.Namespace).toBe('TidemarkTest');
    expect(directive.Dimensions).toEqual([['Source']]);
    return Object.fromEntries(directive.Metrics.map((m) => [m.Name, { unit: m.Unit, value: line[m.Name] }]));
  }

  describe('record-result', () => {
    test('on success: BackupSucceeded, the stored bytes and the age of the newest point', async () => {
      // GIVEN a committed logical backup of 'app'
      const backup = await commitBackup(repo, 'app', { bytes: 4096 });

      // WHEN
      const result = await recordResult({ source: 'app', type: 'logical', outcome: 'succeeded' });

      // THEN
      expect(result).toEqual({ source: 'app', type: 'logical', ok: true, backupId: backup.id, restorePoint: backup.restorePoint.time });
      expect(logs.emf).toHaveLength(1);
      expect(logs.emf[0].Source).toBe('app');
      const metrics = metricsOf(logs.emf[0]);
      expect(metrics).toEqual({
        BackupSucceeded: { unit: 'Count', value: 1 },
        BackupStoredBytes: { unit: 'Bytes', value: backup.storedBytes },
        SecondsSinceNewestRestorablePoint: { unit: 'Seconds', value: expect.any(Number) },
      });
      expect(backup.storedBytes).toBeGreaterThan(4096);
      expect(metrics.SecondsSinceNewestRestorablePoint.value).toBeLessThan(30);
    });

    test('reports the size of the backup of its own type when another type finished later', async () => {
      // GIVEN a logical backup, then a (physical) full one that is newer
      const logical = await commitBackup(repo, 'mixed', { type: 'logical', bytes: 1000 });
      const full = await commitBackup(repo, 'mixed', { type: 'full', bytes: 5000 });

      // WHEN the logical run is recorded
      const result = await recordResult({ source: 'mixed', type: 'logical', outcome: 'succeeded' });

      // THEN its own size, but the newest point overall
      expect(result).toMatchObject({ ok: true, backupId: logical.id, restorePoint: full.restorePoint.time });
      expect(metricsOf(logs.emf[0]).BackupStoredBytes.value).toBe(logical.storedBytes);
    });

    test('on failure: BackupFailed and the error logged, its cause capped', async () => {
      const cause = `{"Containers":[{"ExitCode":1,"Reason":"${'x'.repeat(10_000)}"}]}`;

      const result = await recordResult({ source: 'app', type: 'full', outcome: 'failed', error: { Error: 'States.TaskFailed', Cause: cause } });

      expect(result).toEqual({ source: 'app', type: 'full', ok: false });
      expect(logs.emf).toHaveLength(1);
      expect(logs.emf[0].Source).toBe('app');
      expect(metricsOf(logs.emf[0])).toEqual({ BackupFailed: { unit: 'Count', value: 1 } });
      expect(logs.error).toHaveLength(1);
      const logged = JSON.parse(logs.error[0]) as { source: string; error: string; cause: string };
      expect(logged).toMatchObject({ source: 'app', error: 'States.TaskFailed' });
      expect(logged.cause.length).toBeLessThan(2100);
      expect(logged.cause).toMatch(/more characters\)$/);
    });

    test('success reported but nothing committed counts as a failure', async () => {
      await abandonBackup(repo, 'ghost');

      const result = await recordResult({ source: 'ghost', type: 'logical', outcome: 'succeeded' });

      expect(result).toEqual({ source: 'ghost', type: 'logical', ok: false });
      expect(metricsOf(logs.emf[0])).toEqual({ BackupFailed: { unit: 'Count', value: 1 } });
      expect(logs.error.join('\n')).toMatch(/no committed backup/);
    });

    test('fails when the event is malformed', async () => {
      await expect(recordResult({ source: 'app', type: 'weekly', outcome: 'succeeded' } as never)).rejects.toThrow(UsageError);
      await expect(recordResult({ type: 'full', outcome: 'failed' } as never)).rejects.toThrow(/event.source/);
      expect(logs.emf).toEqual([]);
    });
  });

  describe('rpo-check', () => {
    test('one datapoint per source with a backup; nothing for a source without one; a broken source does not stop the rest', async () => {
      // GIVEN 'app' backed up just now (earlier tests) and 'orders' with a restore point an hour ago
      await commitBackup(repo, 'orders', { restorePoint: new Date(Date.now() - 3600_000).toISOString() });
      process.env.TIDEMARK_SOURCES = JSON.stringify(['app', 'orders', 'never-backed-up', '..']);

      // WHEN
      const result = await rpoCheck();

      // THEN
      expect(result).toEqual({ measured: ['app', 'orders'], withoutBackup: ['never-backed-up'], failed: ['..'] });
      const bySource = Object.fromEntries(logs.emf.map((line) => [line.Source as string, metricsOf(line)]));
      expect(Object.keys(bySource).sort()).toEqual(['app', 'orders']);
      expect(bySource.app).toEqual({ SecondsSinceNewestRestorablePoint: { unit: 'Seconds', value: expect.any(Number) } });
      expect(bySource.app.SecondsSinceNewestRestorablePoint.value).toBeLessThan(60);
      expect(bySource.orders.SecondsSinceNewestRestorablePoint.value).toBeGreaterThanOrEqual(3600);
      expect(bySource.orders.SecondsSinceNewestRestorablePoint.value).toBeLessThan(3660);
      expect(logs.warn.join('\n')).toMatch(/never-backed-up/);
      expect(JSON.parse(logs.error[0])).toMatchObject({ source: '..', error: 'StorageError' });
    });

    test('fails when TIDEMARK_SOURCES is not a JSON array of names', async () => {
      process.env.TIDEMARK_SOURCES = 'app,orders';
      await expect(rpoCheck()).rejects.toThrow(ConfigError);
      process.env.TIDEMARK_SOURCES = '["app", 3]';
      await expect(rpoCheck()).rejects.toThrow(/JSON array/);
    });
  });
});
