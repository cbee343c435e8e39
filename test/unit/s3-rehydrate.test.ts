import { GetObjectCommand, HeadObjectCommand, PutObjectTaggingCommand, RestoreObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { StorageError } from '../../lib/core/errors';
import type { Progress } from '../../lib/core/progress';
import { describeEstimate, estimateRehydration, parseRestoreHeader, type RehydrationEstimate } from '../../lib/core/repository/rehydrate';
import { S3Store } from '../../lib/core/repository/s3-store';
import { FileStore } from '../../lib/core/repository/file-store';
import { applyTieringPlan } from '../../lib/core/retention/apply';

/**
 * The Glacier read path, which no local S3 endpoint has: GET of a cold object fails with
 * InvalidObjectState; rehydrate estimates time and cost, asks RestoreObject, and waits on the
 * x-amz-restore header with progress.
 */
const s3 = mockClient(S3Client);
const meta = { $metadata: {} };
const GiB = 1024 ** 3;
const store = () => new S3Store({ bucket: 'vault', prefix: 'tidemark', region: 'eu-west-1', forcePathStyle: false });

function recordingProgress(): Progress & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    start: (label, total) => events.push(`start ${label} ${total}`),
    advance: (n) => events.push(`advance ${n}`),
    stop: () => events.push('stop'),
    note: (m) => events.push(`note ${m}`),
  };
}

beforeEach(() => s3.reset());

describe('reading from the cold tier', () => {
  it('fails a GET of an archived object with a StorageError that says what to do', async () => {
    s3.on(GetObjectCommand).rejects(new S3ServiceException({ name: 'InvalidObjectState', $fault: 'client', message: 'The operation is not valid for the object\'s storage class', ...meta }));
    const err = await store().get('app/backups/x/dump').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('Archived');
    expect((err as Error).message).toMatch(/s3:\/\/vault\/tidemark\/app\/backups\/x\/dump is in cold storage .* must be rehydrated/);
  });

  it('estimates, asks RestoreObject once per cold object, and waits on x-amz-restore with progress', async () => {
    const heads: Record<string, object[]> = {
      'tidemark/app/warm': [{ ContentLength: 10, StorageClass: 'STANDARD_IA' }],
      'tidemark/app/cold': [
        { ContentLength: 2 * GiB, StorageClass: 'GLACIER' },
        { ContentLength: 2 * GiB, StorageClass: 'GLACIER', Restore: 'ongoing-request="true"' },
        { ContentLength: 2 * GiB, StorageClass: 'GLACIER', Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2026 00:00:00 GMT"' },
      ],
    };
    s3.on(HeadObjectCommand).callsFake((input: { Key: string }) => ({ ...meta, ...(heads[input.Key].length > 1 ? heads[input.Key].shift() : heads[input.Key][0]) }));
    s3.on(RestoreObjectCommand).resolves(meta);
    const progress = recordingProgress();
    let estimate: RehydrationEstimate | undefined;
    const result = await store().rehydrate(['app/warm', 'app/cold'], { pollMs: 1, progress, onEstimate: (e) => (estimate = e) });

    expect(estimate).toEqual({ objects: 1, bytes: 2 * GiB, minHours: 3, maxHours: 5, usd: 0.02 + 0.05 / 1000, tier: 'Standard' });
    expect(result).toMatchObject({ objects: 1, bytes: 2 * GiB });
    const restores = s3.commandCalls(RestoreObjectCommand).map((c) => c.args[0].input);
    expect(restores).toEqual([{ Bucket: 'vault', Key: 'tidemark/app/cold', RestoreRequest: { Days: 7, GlacierJobParameters: { Tier: 'Standard' } } }]);
    expect(progress.events).toEqual([`start rehydrate 1 object ${2 * GiB}`, 'advance 0', `advance ${2 * GiB}`, 'stop']);
  });

  it('does nothing when every object is readable, and joins a restore already in progress', async () => {
    s3.on(HeadObjectCommand).resolves({ ...meta, ContentLength: 5, StorageClass: 'GLACIER', Restore: 'ongoing-request="false", expiry-date="x"' });
    expect(await store().rehydrate(['a', 'b'], { pollMs: 1 })).toEqual({ objects: 0, bytes: 0 });
    expect(s3.commandCalls(RestoreObjectCommand)).toHaveLength(0);

    s3.reset();
    let calls = 0;
    s3.on(HeadObjectCommand).callsFake(() => ({ ...meta, ContentLength: 5, StorageClass: 'DEEP_ARCHIVE', ...(calls++ > 0 ? { Restore: 'ongoing-request="false"' } : {}) }));
    s3.on(RestoreObjectCommand).rejects(new S3ServiceException({ name: 'RestoreAlreadyInProgress', $fault: 'client', message: 'in progress', ...meta }));
    const result = await store().rehydrate(['deep'], { pollMs: 1, tier: 'Expedited' });
    expect(result.estimate).toMatchObject({ minHours: 9, maxHours: 12 });
    // DEEP_ARCHIVE has no Expedited retrieval: Standard is asked for.
    expect(s3.commandCalls(RestoreObjectCommand)[0].args[0].input.RestoreRequest?.GlacierJobParameters?.Tier).toBe('Standard');
  });

  it('stops waiting when interrupted', async () => {
    s3.on(HeadObjectCommand).resolves({ ...meta, ContentLength: 5, StorageClass: 'GLACIER', Restore: 'ongoing-request="true"' });
    const controller = new AbortController();
    const waiting = store().rehydrate(['k'], { pollMs: 5, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('interrupted by SIGINT')), 30);
    await expect(waiting).rejects.toThrow('interrupted by SIGINT');
  });

  it('describes the estimate for people, and reads the x-amz-restore header', () => {
    const e = estimateRehydration([{ bytes: 3 * GiB, storageClass: 'GLACIER' }, { bytes: GiB, storageClass: 'DEEP_ARCHIVE' }], 'Bulk');
    expect(describeEstimate(e, (n) => `${n / GiB} GiB`)).toBe('2 objects are (4 GiB) in cold storage: Bulk retrieval takes 9 h–48 h and costs about $0.00; waiting for S3 to restore them');
    expect(describeEstimate(estimateRehydration([{ bytes: GiB, storageClass: 'GLACIER' }], 'Expedited'), String)).toMatch(/takes 1 min–5 min and costs about \$0\.04/);
    expect(parseRestoreHeader(undefined)).toBe('none');
    expect(parseRestoreHeader('ongoing-request="true"')).toBe('ongoing');
    expect(parseRestoreHeader('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')).toBe('restored');
  });
});

describe('applying a tiering plan', () => {
  it('tags every object of the planned chains with the tier tag the lifecycle rules match', async () => {
    s3.on(PutObjectTaggingCommand).resolves(meta);
    const plan = {
      source: 'app',
      now: '2026-12-01T00:00:00.000Z',
      moves: [{ chain: 'b1', backups: ['b1'], tier: 'cold' as const, keys: ['app/backups/b1/dump', 'app/backups/b1/globals.sql'], bytes: 2 << 20, reason: 'old' }],
    };
    expect(await applyTieringPlan(store(), plan)).toBe(true);
    expect(s3.commandCalls(PutObjectTaggingCommand).map((c) => c.args[0].input)).toEqual(
      ['dump', 'globals.sql'].map((name) => ({ Bucket: 'vault', Key: `tidemark/app/backups/b1/${name}`, Tagging: { TagSet: [{ Key: 'tidemark:tier', Value: 'cold' }] } })),
    );
    // A folder has no tiers: nothing to do, and the caller is told.
    expect(await applyTieringPlan(new FileStore('/nonexistent-tidemark-folder'), plan)).toBe(false);
  });
});
