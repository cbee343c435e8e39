import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CopyDBClusterSnapshotCommand,
  CopyDBSnapshotCommand,
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DBSnapshotNotFoundFault,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBSnapshotsCommand,
  InvalidDBInstanceStateFault,
  RDSClient,
  RDSServiceException,
  SnapshotQuotaExceededFault,
  type DBClusterSnapshot,
  type DBSnapshot,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { runBackup } from '../../lib/core/commands/backup';
import { parseConfig } from '../../lib/core/config/load';
import type { SourceConfig } from '../../lib/core/config/schema';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { RdsSnapshotFailed } from '../../lib/core/engines/rds/rds-failure';
import { backupRdsSnapshot, type RdsSnapshotBackupInput } from '../../lib/core/engines/rds/snapshot-backup';
import { isSnapshotIdentifier, snapshotIdentifier } from '../../lib/core/engines/rds/snapshot-identifier';
import { ConfigError, UsageError } from '../../lib/core/errors';
import type { Progress } from '../../lib/core/progress';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import type { RdsSnapshotDetails } from '../../lib/core/engines/rds/snapshot-details';

const ACCOUNT = '111122223333';
const SOURCE = 'app';
const REGION = 'eu-west-1';
const COPY_REGION = 'eu-central-1';
const COPY_KEY = `arn:aws:kms:${COPY_REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const CREATED = new Date('2026-11-24T07:57:41.000Z');
const FAST = { firstMs: 1, maxMs: 4 };
const meta = { $metadata: {} };

const rds = mockClient(RDSClient);

function instanceSnapshot(id: string, region: string, status: string, extra: Partial<DBSnapshot> = {}): DBSnapshot {
  return {
    DBSnapshotIdentifier: id,
    DBSnapshotArn: `arn:aws:rds:${region}:${ACCOUNT}:snapshot:${id}`,
    DBInstanceIdentifier: 'db-1',
    Status: status,
    Engine: 'postgres',
    EngineVersion: '16.4',
    Encrypted: true,
    KmsKeyId: `arn:aws:kms:${region}:${ACCOUNT}:key/source`,
    AllocatedStorage: 100,
    ...(status === 'available' ? { SnapshotCreateTime: CREATED, PercentProgress: 100 } : {}),
    ...extra,
  };
}

function clusterSnapshot(id: string, region: string, status: string, extra: Partial<DBClusterSnapshot> = {}): DBClusterSnapshot {
  return {
    DBClusterSnapshotIdentifier: id,
    DBClusterSnapshotArn: `arn:aws:rds:${region}:${ACCOUNT}:cluster-snapshot:${id}`,
    DBClusterIdentifier: 'aurora-1',
    Status: status,
    Engine: 'aurora-postgresql',
    EngineVersion: '16.4',
    StorageEncrypted: true,
    KmsKeyId: `arn:aws:kms:${region}:${ACCOUNT}:key/source`,
    AllocatedStorage: 1,
    ...(status === 'available' ? { SnapshotCreateTime: CREATED, PercentProgress: 100 } : {}),
    ...extra,
  };
}

/** The region of the client a mocked command was sent with. */
async function regionOf(getClient: () => unknown): Promise<string> {
  return (getClient() as RDSClient).config.region();
}

function source(rdsSettings: NonNullable<SourceConfig['rds']>): SourceConfig {
  return { engine: 'postgres', url: 'postgres://backup@db-1.example:5432/app', rds: rdsSettings };
}

function recordingProgress(): Progress & { notes: string[] } {
  const notes: string[] = [];
  return { notes, start: () => undefined, advance: () => undefined, stop: () => undefined, note: (m) => notes.push(m) };
}

let dir: string;
let repository: Repository;

beforeEach(async () => {
  rds.reset();
  dir = await mkdtemp(join(tmpdir(), 'tidemark-rds-'));
  repository = new Repository(new FileStore(dir), new LocalKeyProvider('k'.repeat(40), 'the key from env:TIDEMARK_KEY'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));
afterAll(() => rds.restore());

function run(config: SourceConfig, extra: Partial<RdsSnapshotBackupInput> = {}) {
  // As runBackup does: a backup that failed gives up its claim on the source.
  return backupRdsSnapshot({ repository, source: SOURCE, config, progress: recordingProgress(), region: REGION, poll: FAST, ...extra }).finally(() =>
    repository.endBackups(),
  );
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

async function expectNothingCommitted(): Promise<void> {
  const catalog = await repository.catalog(SOURCE);
  expect(catalog.backups).toHaveLength(0);
  expect(catalog.problems).toHaveLength(0);
}

describe('snapshot identifiers', () => {
  const id = '20261124T075740.123Z-3f9a1c';

  it('is tidemark-<source>-<yyyymmddhhmmss> for plain source names', () => {
    expect(snapshotIdentifier('app', id)).toBe('tidemark-app-20261124075740');
    expect(snapshotIdentifier('orders-eu', id)).toBe('tidemark-orders-eu-20261124075740');
  });

  it('sanitises names RDS would refuse, keeping different sources apart', () => {
    const names = ['App_1', 'app.1', 'app--1', '9lives', 'a'.repeat(63), `${'a'.repeat(62)}b`];
    const ids = names.map((n) => snapshotIdentifier(n, id));
    for (const s of ids) {
      expect(isSnapshotIdentifier(s)).toBe(true);
      expect(s.length).toBeLessThanOrEqual(63);
      expect(s).toMatch(/^tidemark-[a-z0-9-]+-20261124075740$/);
    }
    expect(new Set(ids).size).toBe(names.length);
    expect(snapshotIdentifier('App_1', id)).toMatch(/^tidemark-app-1-[0-9a-f]{6}-20261124075740$/);
  });
});

describe('backupRdsSnapshot: instances', () => {
  it('takes a snapshot, waits through creating to available and records it in the catalog', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake(async (input, getClient) => {
      expect(await regionOf(getClient)).toBe(REGION);
      return { DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating') };
    });
    rds
      .on(DescribeDBSnapshotsCommand)
      .callsFakeOnce((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating', { PercentProgress: 0 })] }))
      .callsFakeOnce((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating', { PercentProgress: 45 })] }))
      .callsFakeOnce((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating', { PercentProgress: 45 })] }))
      .callsFake((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'available')] }));
    const progress = recordingProgress();

    const manifest = await run(source({ instance: 'db-1' }), { progress });

    const identifier = snapshotIdentifier(SOURCE, manifest.id);
    expect(identifier).toBe(`tidemark-app-${manifest.id.slice(0, 8)}${manifest.id.slice(9, 15)}`);
    const [create] = rds.commandCalls(CreateDBSnapshotCommand);
    expect(create.args[0].input).toEqual({
      DBInstanceIdentifier: 'db-1',
      DBSnapshotIdentifier: identifier,
      Tags: [
        { Key: 'tidemark:source', Value: SOURCE },
        { Key: 'tidemark:backup', Value: manifest.id },
      ],
    });
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(4);
    expect(progress.notes).toEqual(
      expect.arrayContaining([`snapshot ${identifier}: creating, 0 %`, `snapshot ${identifier}: creating, 45 %`]),
    );
    expect(progress.notes.filter((n) => n.endsWith('45 %'))).toHaveLength(1); // notes only on change

    expect(manifest).toMatchObject({ source: SOURCE, engine: 'postgres', type: 'full', objects: [], plainBytes: 0, storedBytes: 0 });
    expect(manifest.restorePoint).toEqual({ time: CREATED.toISOString() });
    expect(manifest.details).toEqual({
      kind: 'rds-snapshot',
      snapshotArn: `arn:aws:rds:${REGION}:${ACCOUNT}:snapshot:${identifier}`,
      snapshotIdentifier: identifier,
      region: REGION,
      instance: 'db-1',
      rdsEngine: 'postgres',
      engineVersion: '16.4',
      encrypted: true,
      kmsKeyId: `arn:aws:kms:${REGION}:${ACCOUNT}:key/source`,
      allocatedStorageGiB: 100,
    });

    const catalog = await repository.catalog(SOURCE);
    expect(catalog.backups).toHaveLength(1);
    expect(catalog.backups[0]).toMatchObject({ id: manifest.id, type: 'full', details: { kind: 'rds-snapshot', snapshotArn: (manifest.details as RdsSnapshotDetails).snapshotArn } });
    // The record is authenticated like any other backup.
    const opened = await repository.openBackup(SOURCE, { id: manifest.id });
    expect(opened.manifest.details.kind).toBe('rds-snapshot');
  });

  it('uses the start time as the restore point when RDS reports no snapshot time', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake((input) => ({
      DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'available', { SnapshotCreateTime: undefined }),
    }));
    const start = new Date('2026-11-24T08:00:00.000Z');
    const manifest = await run(source({ instance: 'db-1' }), { now: () => start });
    expect(manifest.restorePoint.time).toBe(start.toISOString());
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(0);
  });

  it('keeps waiting through throttling and a snapshot not yet visible', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake((input) => ({ DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating') }));
    rds
      .on(DescribeDBSnapshotsCommand)
      .rejectsOnce(new DBSnapshotNotFoundFault({ message: 'DBSnapshot not found', ...meta }))
      .rejectsOnce(new RDSServiceException({ name: 'Throttling', $fault: 'client', message: 'Rate exceeded', ...meta }))
      .callsFake((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'available')] }));
    const manifest = await run(source({ instance: 'db-1' }));
    expect(manifest.type).toBe('full');
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(3);
  });
});

describe('backupRdsSnapshot: clusters', () => {
  it('takes a cluster snapshot and records it', async () => {
    rds.on(CreateDBClusterSnapshotCommand).callsFake((input) => ({
      DBClusterSnapshot: clusterSnapshot(input.DBClusterSnapshotIdentifier, REGION, 'creating'),
    }));
    rds
      .on(DescribeDBClusterSnapshotsCommand)
      .callsFakeOnce((input) => ({ DBClusterSnapshots: [clusterSnapshot(input.DBClusterSnapshotIdentifier, REGION, 'creating', { PercentProgress: 50 })] }))
      .callsFake((input) => ({ DBClusterSnapshots: [clusterSnapshot(input.DBClusterSnapshotIdentifier, REGION, 'available')] }));

    const manifest = await run(source({ cluster: 'aurora-1' }));

    const identifier = snapshotIdentifier(SOURCE, manifest.id);
    expect(rds.commandCalls(CreateDBClusterSnapshotCommand)[0].args[0].input).toMatchObject({
      DBClusterIdentifier: 'aurora-1',
      DBClusterSnapshotIdentifier: identifier,
      Tags: expect.arrayContaining([{ Key: 'tidemark:backup', Value: manifest.id }]),
    });
    expect(rds.commandCalls(CreateDBSnapshotCommand)).toHaveLength(0);
    expect(manifest.details).toMatchObject({
      kind: 'rds-snapshot',
      cluster: 'aurora-1',
      snapshotArn: `arn:aws:rds:${REGION}:${ACCOUNT}:cluster-snapshot:${identifier}`,
      rdsEngine: 'aurora-postgresql',
    });
    expect(manifest.details).not.toHaveProperty('instance');
    expect((await repository.catalog(SOURCE)).backups.map((b) => b.id)).toEqual([manifest.id]);
  });
});

describe('backupRdsSnapshot: cross-region copies', () => {
  it('copies the snapshot with a client in the destination region and the configured key, then waits for the copy', async () => {
    const sentFrom: Record<string, string[]> = {};
    const seen = async (what: string, getClient: () => unknown) => {
      const region = await regionOf(getClient);
      (sentFrom[what] ??= []).push(region);
      return region;
    };
    rds.on(CreateDBSnapshotCommand).callsFake(async (input, getClient) => ({
      DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, await seen('create', getClient), 'creating'),
    }));
    rds.on(CopyDBSnapshotCommand).callsFake(async (input, getClient) => ({
      DBSnapshot: instanceSnapshot(input.TargetDBSnapshotIdentifier, await seen('copy', getClient), 'pending', { KmsKeyId: input.KmsKeyId }),
    }));
    const describes: Record<string, number> = {};
    rds.on(DescribeDBSnapshotsCommand).callsFake(async (input, getClient) => {
      const region = await seen('describe', getClient);
      describes[region] = (describes[region] ?? 0) + 1;
      const status = describes[region] < 2 ? (region === COPY_REGION ? 'copying' : 'creating') : 'available';
      const extra = region === COPY_REGION ? { KmsKeyId: COPY_KEY } : {};
      return { DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, region, status, extra)] };
    });

    const manifest = await run(source({ instance: 'db-1', copyToRegion: COPY_REGION, copyKmsKeyArn: COPY_KEY }));

    const identifier = snapshotIdentifier(SOURCE, manifest.id);
    const sourceArn = `arn:aws:rds:${REGION}:${ACCOUNT}:snapshot:${identifier}`;
    const [copy] = rds.commandCalls(CopyDBSnapshotCommand);
    expect(copy.args[0].input).toEqual({
      SourceDBSnapshotIdentifier: sourceArn, // an ARN: the SDK signs the PreSignedUrl in its region
      TargetDBSnapshotIdentifier: identifier,
      KmsKeyId: COPY_KEY,
      CopyTags: true,
    });
    expect(sentFrom).toEqual({
      create: [REGION],
      describe: [REGION, REGION, COPY_REGION, COPY_REGION],
      copy: [COPY_REGION],
    });
    expect(manifest.details).toMatchObject({
      snapshotArn: sourceArn,
      region: REGION,
      copy: {
        region: COPY_REGION,
        snapshotArn: `arn:aws:rds:${COPY_REGION}:${ACCOUNT}:snapshot:${identifier}`,
        kmsKeyId: COPY_KEY,
        encrypted: true,
      },
    });
  });

  it('passes the key for encrypted cluster snapshots only (RDS refuses one for unencrypted copies)', async () => {
    for (const encrypted of [true, false]) {
      rds.reset();
      rds.on(CreateDBClusterSnapshotCommand).callsFake((input) => ({
        DBClusterSnapshot: clusterSnapshot(input.DBClusterSnapshotIdentifier, REGION, 'available', { StorageEncrypted: encrypted }),
      }));
      rds.on(CopyDBClusterSnapshotCommand).callsFake(async (input, getClient) => ({
        DBClusterSnapshot: clusterSnapshot(input.TargetDBClusterSnapshotIdentifier, await regionOf(getClient), 'available', {
          StorageEncrypted: encrypted,
        }),
      }));
      const manifest = await run(source({ cluster: 'aurora-1', copyToRegion: COPY_REGION, copyKmsKeyArn: COPY_KEY }));
      const identifier = snapshotIdentifier(SOURCE, manifest.id);
      const [copy] = rds.commandCalls(CopyDBClusterSnapshotCommand);
      expect(copy.args[0].input).toEqual({
        SourceDBClusterSnapshotIdentifier: `arn:aws:rds:${REGION}:${ACCOUNT}:cluster-snapshot:${identifier}`,
        TargetDBClusterSnapshotIdentifier: identifier,
        ...(encrypted ? { KmsKeyId: COPY_KEY } : {}),
        CopyTags: true,
      });
      expect(manifest.details).toMatchObject({ copy: { region: COPY_REGION, encrypted } });
    }
  });

  it('fails before any snapshot when the copy key is not in the copy region', async () => {
    const wrongKey = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    const error = await rejection(run(source({ instance: 'db-1', copyToRegion: COPY_REGION, copyKmsKeyArn: wrongKey })));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(`sources.app.rds.copyKmsKeyArn must be a KMS key in ${COPY_REGION} (where the copies go), got ${wrongKey}`);
    expect(rds.calls()).toHaveLength(0);
  });

  it('commits nothing when the copy fails', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake((input) => ({ DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'available') }));
    rds.on(CopyDBSnapshotCommand).rejects(new SnapshotQuotaExceededFault({ message: 'Cannot create more than 100 manual snapshots', ...meta }));
    const error = await rejection(run(source({ instance: 'db-1', copyToRegion: COPY_REGION, copyKmsKeyArn: COPY_KEY })));
    expect(error).toBeInstanceOf(RdsSnapshotFailed);
    expect(error.message).toMatch(
      new RegExp(`^copying RDS snapshot tidemark-app-\\d{14} of instance 'db-1' from ${REGION} to ${COPY_REGION} failed: the account's manual snapshot quota in ${COPY_REGION} is used up \\(SnapshotQuotaExceeded\\)`),
    );
    await expectNothingCommitted();
  });
});

describe('backupRdsSnapshot: failures commit nothing', () => {
  it('fails when the snapshot ends in status failed', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake((input) => ({ DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating') }));
    rds
      .on(DescribeDBSnapshotsCommand)
      .callsFakeOnce((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating', { PercentProgress: 30 })] }))
      .callsFake((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'failed')] }));
    const error = await rejection(run(source({ instance: 'db-1' })));
    expect(error).toBeInstanceOf(RdsSnapshotFailed);
    expect(error.message).toMatch(/^RDS snapshot of instance 'db-1' in eu-west-1 failed: snapshot tidemark-app-\d{14}: RDS reports status 'failed'$/);
    await expectNothingCommitted();
  });

  it('fails with the reason when RDS refuses the snapshot', async () => {
    rds.on(CreateDBSnapshotCommand).rejects(new SnapshotQuotaExceededFault({ message: 'quota', ...meta }));
    let error = await rejection(run(source({ instance: 'db-1' })));
    expect(error).toBeInstanceOf(RdsSnapshotFailed);
    expect(error.message).toBe(
      "RDS snapshot of instance 'db-1' in eu-west-1 failed: the account's manual snapshot quota in eu-west-1 is used up (SnapshotQuotaExceeded): delete old manual snapshots or ask AWS for a higher quota",
    );

    rds.on(CreateDBSnapshotCommand).rejects(
      new InvalidDBInstanceStateFault({ message: 'Cannot create a snapshot because the database instance db-1 is not currently in the available state.', ...meta }),
    );
    error = await rejection(run(source({ instance: 'db-1' })));
    expect(error.message).toBe(
      "RDS snapshot of instance 'db-1' in eu-west-1 failed: instance 'db-1' cannot be snapshotted in its current state (InvalidDBInstanceState: Cannot create a snapshot because the database instance db-1 is not currently in the available state.)",
    );
    expect(error.message).not.toContain('\n');
    await expectNothingCommitted();
  });

  it('fails when RDS cannot be reached, naming the region', async () => {
    rds.on(CreateDBSnapshotCommand).rejects(Object.assign(new Error('connect ETIMEDOUT 1.2.3.4:443'), { code: 'ETIMEDOUT' }));
    const error = await rejection(run(source({ instance: 'db-1' })));
    expect(error.message).toBe("RDS snapshot of instance 'db-1' in eu-west-1 failed: cannot reach RDS in eu-west-1 (ETIMEDOUT)");
  });

  it('stops waiting on abort and commits nothing', async () => {
    const controller = new AbortController();
    const reason = new Error('interrupted by SIGTERM');
    rds.on(CreateDBSnapshotCommand).callsFake((input) => {
      setTimeout(() => controller.abort(reason), 20);
      return { DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating', { PercentProgress: 0 }) };
    });
    rds.on(DescribeDBSnapshotsCommand).callsFake((input) => ({ DBSnapshots: [instanceSnapshot(input.DBSnapshotIdentifier, REGION, 'creating')] }));
    const progress = recordingProgress();
    const started = Date.now();
    // A minute between polls: the abort must end the wait, not the timer.
    const error = await rejection(run(source({ instance: 'db-1' }), { signal: controller.signal, progress, poll: { firstMs: 60_000, maxMs: 60_000 } }));
    expect(error).toBe(reason);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(rds.commandCalls(DescribeDBSnapshotsCommand)).toHaveLength(0);
    expect(progress.notes.at(-1)).toMatch(/^stopped waiting: RDS goes on with snapshot tidemark-app-\d{14} \(tag tidemark:backup=\S+\), but no backup is recorded$/);
    await expectNothingCommitted();
  });

  it('does not start when already aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(run(source({ instance: 'db-1' }), { signal: controller.signal })).rejects.toThrow('stop');
    expect(rds.calls()).toHaveLength(0);
  });
});

describe('tidemark backup dispatch for RDS sources', () => {
  const KEY_VAR = 'TIDEMARK_RDS_TEST_KEY';
  beforeAll(() => {
    process.env[KEY_VAR] = 'k'.repeat(40);
  });
  afterAll(() => {
    delete process.env[KEY_VAR];
  });

  const config = () =>
    parseConfig(
      JSON.stringify({
        repository: `file://${dir}`,
        encryption: { key: `env:${KEY_VAR}` },
        sources: {
          app: { engine: 'postgres', url: 'postgres://backup@db-1.example/app', rds: { instance: 'db-1' }, aws: { region: REGION } },
          shop: { engine: 'mysql', url: 'mysql://backup@db-2.example/shop', rds: { cluster: 'aurora-2' } },
        },
      }),
      'test.json',
    );

  it('runs --type full as an RDS snapshot in the source region', async () => {
    rds.on(CreateDBSnapshotCommand).callsFake(async (input, getClient) => ({
      DBSnapshot: instanceSnapshot(input.DBSnapshotIdentifier, await regionOf(getClient), 'available'),
    }));
    const result = await runBackup(config(), 'app', { type: 'full', progress: recordingProgress() });
    expect(result).toMatchObject({ type: 'full', bytes: 0, storedBytes: 0 });
    const catalog = await repository.catalog('app');
    expect(catalog.backups.map((b) => [b.id, b.type, (b.details as RdsSnapshotDetails).snapshotArn])).toEqual([
      [result.id, 'full', `arn:aws:rds:${REGION}:${ACCOUNT}:snapshot:${snapshotIdentifier('app', result.id)}`],
    ]);
  });

  it('fails with the available types for other types of RDS sources', async () => {
    await expect(runBackup(config(), 'app', { type: 'incr', progress: recordingProgress() })).rejects.toThrow(
      new UsageError("incr backups of source 'app' (postgres on RDS) are not available (available: full (an RDS snapshot), logical (pg_dump))"),
    );
    await expect(runBackup(config(), 'shop', { type: 'incr', progress: recordingProgress() })).rejects.toThrow(
      new UsageError("incr backups of source 'shop' (mysql on RDS) are not available (available: full (an RDS snapshot), logical (mysqldump))"),
    );
    expect(rds.calls()).toHaveLength(0);
  });
});
