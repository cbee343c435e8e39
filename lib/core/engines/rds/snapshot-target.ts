import {
  CopyDBClusterSnapshotCommand,
  CopyDBSnapshotCommand,
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBSnapshotsCommand,
  type DBClusterSnapshot,
  type DBSnapshot,
  type RDSClient,
  type Tag,
} from '@aws-sdk/client-rds';
import type { SourceConfig } from '../../config/schema';

/**
 * RDS has two snapshot APIs with the same shape: DB instances (RDS for PostgreSQL/MySQL/MariaDB)
 * and DB clusters (Aurora, Multi-AZ clusters). A SnapshotTarget hides which one a source uses.
 */

export type RdsSettings = NonNullable<SourceConfig['rds']>;

/** The fields of DBSnapshot / DBClusterSnapshot that a backup records or waits on. */
export interface RdsSnapshot {
  readonly identifier: string;
  readonly arn: string;
  /** creating, copying, available, failed, incompatible-…, … */
  readonly status: string;
  readonly percent?: number;
  /** When the data was frozen: the backup's restore point. */
  readonly createdAt?: Date;
  readonly engine?: string;
  readonly engineVersion?: string;
  readonly encrypted: boolean;
  readonly kmsKeyId?: string;
  readonly allocatedStorageGiB?: number;
}

export interface SnapshotTarget {
  readonly kind: 'instance' | 'cluster';
  /** The DB instance or cluster identifier. */
  readonly id: string;
  /** `instance 'db-1'`, `cluster 'aurora-1'`: how messages name it. */
  readonly label: string;
  create(client: RDSClient, identifier: string, tags: Tag[]): Promise<RdsSnapshot>;
  /** undefined when RDS does not know the snapshot (yet, or any more). */
  describe(client: RDSClient, identifier: string): Promise<RdsSnapshot | undefined>;
  /** Copies `sourceArn` into the client's region; the SDK signs the cross-region request itself. */
  copy(client: RDSClient, sourceArn: string, identifier: string, kmsKeyId: string, encrypted: boolean): Promise<RdsSnapshot>;
}

function fromInstanceSnapshot(s: DBSnapshot | undefined): RdsSnapshot {
  return {
    identifier: s?.DBSnapshotIdentifier ?? '',
    arn: s?.DBSnapshotArn ?? '',
    status: s?.Status ?? 'unknown',
    percent: s?.PercentProgress,
    createdAt: s?.SnapshotCreateTime,
    engine: s?.Engine,
    engineVersion: s?.EngineVersion,
    encrypted: s?.Encrypted ?? false,
    kmsKeyId: s?.KmsKeyId,
    allocatedStorageGiB: s?.AllocatedStorage,
  };
}

function fromClusterSnapshot(s: DBClusterSnapshot | undefined): RdsSnapshot {
  return {
    identifier: s?.DBClusterSnapshotIdentifier ?? '',
    arn: s?.DBClusterSnapshotArn ?? '',
    status: s?.Status ?? 'unknown',
    percent: s?.PercentProgress,
    createdAt: s?.SnapshotCreateTime,
    engine: s?.Engine,
    engineVersion: s?.EngineVersion,
    encrypted: s?.StorageEncrypted ?? false,
    kmsKeyId: s?.KmsKeyId,
    allocatedStorageGiB: s?.AllocatedStorage,
  };
}

function isNotFound(err: unknown): boolean {
  return /^DB(Cluster)?SnapshotNotFound(Fault)?$/.test((err as { name?: string } | null)?.name ?? '');
}

const instanceTarget = (id: string): SnapshotTarget => ({
  kind: 'instance',
  id,
  label: `instance '${id}'`,
  async create(client, identifier, tags) {
    const out = await client.send(new CreateDBSnapshotCommand({ DBInstanceIdentifier: id, DBSnapshotIdentifier: identifier, Tags: tags }));
    return fromInstanceSnapshot(out.DBSnapshot);
  },
  async describe(client, identifier) {
    try {
      const out = await client.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: identifier }));
      return out.DBSnapshots?.[0] ? fromInstanceSnapshot(out.DBSnapshots[0]) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  },
  async copy(client, sourceArn, identifier, kmsKeyId) {
    // An unencrypted instance snapshot copied with a key comes out encrypted: always pass it.
    const out = await client.send(
      new CopyDBSnapshotCommand({
        SourceDBSnapshotIdentifier: sourceArn,
        TargetDBSnapshotIdentifier: identifier,
        KmsKeyId: kmsKeyId,
        CopyTags: true,
      }),
    );
    return fromInstanceSnapshot(out.DBSnapshot);
  },
});

const clusterTarget = (id: string): SnapshotTarget => ({
  kind: 'cluster',
  id,
  label: `cluster '${id}'`,
  async create(client, identifier, tags) {
    const out = await client.send(
      new CreateDBClusterSnapshotCommand({ DBClusterIdentifier: id, DBClusterSnapshotIdentifier: identifier, Tags: tags }),
    );
    return fromClusterSnapshot(out.DBClusterSnapshot);
  },
  async describe(client, identifier) {
    try {
      const out = await client.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: identifier }));
      return out.DBClusterSnapshots?.[0] ? fromClusterSnapshot(out.DBClusterSnapshots[0]) : undefined;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  },
  async copy(client, sourceArn, identifier, kmsKeyId, encrypted) {
    // RDS refuses KmsKeyId when copying an unencrypted cluster snapshot; such a copy stays unencrypted.
    const out = await client.send(
      new CopyDBClusterSnapshotCommand({
        SourceDBClusterSnapshotIdentifier: sourceArn,
        TargetDBClusterSnapshotIdentifier: identifier,
        ...(encrypted ? { KmsKeyId: kmsKeyId } : {}),
        CopyTags: true,
      }),
    );
    return fromClusterSnapshot(out.DBClusterSnapshot);
  },
});

export function snapshotTarget(rds: RdsSettings): SnapshotTarget {
  if (rds.instance !== undefined) return instanceTarget(rds.instance);
  if (rds.cluster !== undefined) return clusterTarget(rds.cluster);
  throw new Error('rds settings name neither an instance nor a cluster'); // the config schema prevents this
}
