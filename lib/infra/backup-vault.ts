import { Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import { S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY } from 'aws-cdk-lib/cx-api';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { TIER_COLD, TIER_TAG_KEY, TIER_WARM, WARM_TRANSITION_DAYS, type ColdClass } from '../core/config/tiers';
import { nagReference } from './nag-finding';

/** Default S3 Object Lock retention applied to every new object version. */
export interface ObjectLockDefault {
  readonly mode: 'governance' | 'compliance';
  /** Whole days, at least 1. */
  readonly days: number;
}

export type ColdStorageClass = ColdClass;

/** The second copy of 3-2-1: a bucket in another region and the key it encrypts with. */
export interface VaultReplica {
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
}

export interface ReplicaVaultProps {
  /**
   * The key the bucket encrypts objects with (SSE-KMS).
   * @default - a new key with automatic rotation, retained when the stack is deleted
   */
  readonly encryptionKey?: kms.IKey;
  /**
   * Default Object Lock retention of every new object version (`aws.objectLock`); give the vault
   * and its replica the same one.
   * @default { mode: 'governance', days: 14 }
   */
  readonly objectLock?: ObjectLockDefault;
  /**
   * How long the bucket's server access logs are kept.
   * @default Duration.days(365)
   */
  readonly accessLogRetention?: Duration;
}

export interface BackupVaultProps extends ReplicaVaultProps {
  /**
   * Storage class of objects tagged `tidemark:tier=cold` (`aws.coldStorageClass`).
   * @default 'GLACIER'
   */
  readonly coldStorageClass?: ColdStorageClass;
  /**
   * Replicate every object to this bucket (a {@link ReplicaVault} in `aws.replicaRegion`),
   * re-encrypted with its key.
   * @default - no replication
   */
  readonly replica?: VaultReplica;
}

const DEFAULT_OBJECT_LOCK: ObjectLockDefault = { mode: 'governance', days: 14 };
const COLD_CLASSES: Record<ColdStorageClass, s3.StorageClass> = {
  GLACIER: s3.StorageClass.GLACIER,
  DEEP_ARCHIVE: s3.StorageClass.DEEP_ARCHIVE,
};
// S3 refuses a STANDARD_IA transition younger than 30 days; GLACIER and DEEP_ARCHIVE accept 0, so a
// chain the planner tags cold moves at the next lifecycle run.
const WARM_AFTER = Duration.days(WARM_TRANSITION_DAYS);
const COLD_AFTER = Duration.days(0);
/** The folders of a source that retention plans over and may delete from (DESIGN.md §3 layout). */
const RETAINED_FOLDERS = ['backups', 'wal', 'binlog'] as const;
// Parts of an upload a killed worker never finished: nobody can read them, yet they are billed.
const ABORT_UPLOADS_AFTER = Duration.days(7);

/**
 * The backup repository: a KMS-encrypted, versioned, Object Lock bucket that is never deleted with
 * the stack, whose lifecycle rules implement the tier-tag contract, optionally replicated to a
 * {@link ReplicaVault} in another region. Retention is not here: it must never be a lifecycle
 * side effect, so no rule expires a current object. The retention function decides (and is the
 * only principal that may delete, see grantRetention); a lifecycle rule only frees the bytes of
 * what it deleted.
 */
export class BackupVault extends Construct {
  readonly bucket: s3.Bucket;
  readonly key: kms.IKey;
  readonly accessLogs: s3.Bucket;
  /** Key prefix of the repository inside the bucket. */
  readonly prefix = 'tidemark';
  /** `s3://<bucket>/tidemark`, the repository URL workers and Lambdas are given. */
  readonly repositoryUrl: string;
  /** The role S3 replicates with, when a replica is configured. */
  readonly replicationRole?: iam.Role;

  constructor(scope: Construct, id: string, props: BackupVaultProps = {}) {
    super(scope, id);
    const lock = checkObjectLock(this, props.objectLock);
    const coldClass = props.coldStorageClass ?? 'GLACIER';
    if (!(coldClass in COLD_CLASSES)) {
      throw new Error(`${this.node.path}: coldStorageClass must be GLACIER or DEEP_ARCHIVE, got ${JSON.stringify(coldClass)}`);
    }
    if (props.replica) checkReplicaRegion(this, props.replica);
    useLogBucketPolicy(this);

    this.key = props.encryptionKey ?? vaultKey(this, 'Tidemark backup vault');
    this.accessLogs = accessLogBucket(this, props.accessLogRetention);
    this.replicationRole = props.replica
      ? new iam.Role(this, 'ReplicationRole', { assumedBy: new iam.ServicePrincipal('s3.amazonaws.com') })
      : undefined;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      ...lockedBucketProps(this.key, lock, this.accessLogs),
      lifecycleRules: [
        { id: 'TierWarm', tagFilters: { [TIER_TAG_KEY]: TIER_WARM }, transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: WARM_AFTER }] },
        { id: 'TierCold', tagFilters: { [TIER_TAG_KEY]: TIER_COLD }, transitions: [{ storageClass: COLD_CLASSES[coldClass], transitionAfter: COLD_AFTER }] },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: ABORT_UPLOADS_AFTER },
        // On a versioned bucket the retention function's DeleteObject only adds a delete marker; the
        // version it hides stays (and is billed) until this rule expires it. It respects Object Lock
        // twice over: retention deletes nothing whose lock has not ended, and S3 lifecycle never
        // removes a version whose retain-until date is still ahead (it waits for the date). The delay
        // of `lock.days` after the delete is the window in which a wrong deletion can be undone by
        // removing its delete marker. Markers left with no version behind them are removed too.
        {
          id: 'FreeDeletedVersions',
          noncurrentVersionExpiration: Duration.days(lock.days),
          expiredObjectDeleteMarker: true,
        },
      ],
      // Tiny objects (manifests, indexes) cost more to transition than they save; restore reads them first.
      transitionDefaultMinimumObjectSize: s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
      ...(props.replica && this.replicationRole
        ? {
            replicationRole: this.replicationRole,
            replicationRules: [{
              id: 'ReplicateToReplicaVault',
              destination: props.replica.bucket,
              kmsKey: props.replica.key,
              sseKmsEncryptedObjects: true,
              // A delete on the primary (retention, or an attacker) must not reach the second copy.
              deleteMarkerReplication: false,
            }],
          }
        : {}),
    });
    if (props.replica && this.replicationRole) this.grantReplication(this.replicationRole, props.replica);
    this.repositoryUrl = `s3://${this.bucket.bucketName}/${this.prefix}`;
  }

  /**
   * Store backups: put and read objects under the prefix, list the bucket, and encrypt with the key.
   * No delete, retention, legal hold, tagging or lifecycle action of any kind. s3:AbortMultipartUpload
   * is included on purpose: it discards parts of an unfinished upload and never touches a stored object.
   */
  grantWrite(grantee: iam.IGrantable): iam.Grant {
    return this.grantOnRepository(grantee, ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'])
      .combine(this.key.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt', 'kms:DescribeKey'));
  }

  /** Restore, verify and list: read objects under the prefix, list the bucket, decrypt. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.grantOnRepository(grantee, ['s3:GetObject'])
      .combine(this.key.grant(grantee, 'kms:Decrypt', 'kms:DescribeKey'));
  }

  /**
   * For the tiering function only: read and set the tier tag on the objects retention plans over
   * (each source's backups/, wal/ and binlog/). No delete, no storage-class change of its own: the
   * lifecycle rules move what is tagged.
   */
  grantTagging(grantee: iam.IGrantable, sources: readonly string[]): iam.Grant {
    return iam.Grant.addToPrincipalOrResource({
      grantee, actions: ['s3:GetObjectTagging', 's3:PutObjectTagging'], resourceArns: this.retainedObjectArns(grantee, sources, 'grantTagging'), resource: this.bucket,
    });
  }

  /**
   * For the retention function only, the one principal that may delete: s3:DeleteObject on each
   * source's backups/, wal/ and binlog/ and nothing else (never the repository marker
   * `tidemark.json`, never `<source>/drills/`), and an explicit deny on the archives' `keys/`,
   * whose data keys every archived object needs. DeleteObject without a version id only adds a
   * delete marker; no version is ever deleted by a principal (s3:DeleteObjectVersion is granted to
   * none): the FreeDeletedVersions lifecycle rule frees them, after Object Lock.
   */
  grantRetention(grantee: iam.IGrantable, sources: readonly string[]): iam.Grant {
    checkSourceNames(this, sources, 'grantRetention'); // before anything is granted
    const read = this.grantCatalogRead(grantee, sources);
    const deletable = this.retainedObjectArns(grantee, sources, 'grantRetention');
    const del = iam.Grant.addToPrincipalOrResource({ grantee, actions: ['s3:DeleteObject'], resourceArns: deletable, resource: this.bucket });
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      effect: iam.Effect.DENY,
      actions: ['s3:DeleteObject'],
      resources: sources.flatMap((s) => ['wal', 'binlog'].map((stream) => this.bucket.arnForObjects(`${this.prefix}/${s}/${stream}/keys/*`))),
    }));
    return read.combine(del);
  }

  /**
   * What retention and tiering read to build their catalog: list the bucket, get objects under each
   * source's backups/, wal/ and binlog/ (manifests, leases, archive headers; HeadObject is
   * s3:GetObject too), and decrypt them. Nothing else of the repository.
   */
  grantCatalogRead(grantee: iam.IGrantable, sources: readonly string[]): iam.Grant {
    checkSourceNames(this, sources, 'grantCatalogRead');
    const list = iam.Grant.addToPrincipalOrResource({
      grantee, actions: ['s3:ListBucket'], resourceArns: [this.bucket.bucketArn], resource: this.bucket,
    });
    return list
      .combine(iam.Grant.addToPrincipalOrResource({ grantee, actions: ['s3:GetObject'], resourceArns: this.retainedObjectArns(grantee, sources, 'grantCatalogRead'), resource: this.bucket }))
      .combine(this.key.grant(grantee, 'kms:Decrypt', 'kms:DescribeKey'));
  }

  /** `<prefix>/<source>/{backups,wal,binlog}/*` per source: what retention plans over. */
  private retainedObjectArns(grantee: iam.IGrantable, sources: readonly string[], what: string): string[] {
    checkSourceNames(this, sources, what);
    const arns = sources.flatMap((s) => RETAINED_FOLDERS.map((folder) => this.bucket.arnForObjects(`${this.prefix}/${s}/${folder}/*`)));
    const reason = `Scoped to one source's ${RETAINED_FOLDERS.join('/, ')}/ folders: backup and archive object keys are created per run and cannot be listed ahead.`;
    for (const arn of arns) this.acknowledgeObjectWildcard(grantee.grantPrincipal, arn, reason);
    return arns;
  }

  // ListBucket carries no s3:prefix condition: S3 answers HeadObject on a missing key with 404 only
  // when ListBucket is allowed without one, and the worker's no-overwrite check depends on that 404.
  private grantOnRepository(grantee: iam.IGrantable, objectActions: string[]): iam.Grant {
    const list = iam.Grant.addToPrincipalOrResource({
      grantee, actions: ['s3:ListBucket'], resourceArns: [this.bucket.bucketArn], resource: this.bucket,
    });
    return list.combine(this.grantOnObjects(grantee, objectActions));
  }

  private grantOnObjects(grantee: iam.IGrantable, actions: string[]): iam.Grant {
    const objects = this.bucket.arnForObjects(`${this.prefix}/*`);
    this.acknowledgeObjectWildcard(grantee.grantPrincipal, objects, 'Scoped to the repository prefix: backup object keys are created per run and cannot be listed ahead.');
    return iam.Grant.addToPrincipalOrResource({ grantee, actions, resourceArns: [objects], resource: this.bucket });
  }

  // Written out instead of bucket.grantReplicationPermission, which also grants s3:ReplicateDelete
  // and ownership override: neither is needed when delete markers stay on the primary.
  private grantReplication(role: iam.Role, replica: VaultReplica): void {
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'],
      resources: [this.bucket.bucketArn],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      // Retention and legal hold are read so the replica's copies stay locked like the originals.
      actions: ['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging', 's3:GetObjectRetention', 's3:GetObjectLegalHold'],
      resources: [this.bucket.arnForObjects('*')],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:ReplicateObject', 's3:ReplicateTags'],
      resources: [replica.bucket.arnForObjects('*')],
    }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [this.key.keyArn] }));
    // GenerateDataKey as well as Encrypt: the replica bucket encrypts through an S3 Bucket Key.
    role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:Encrypt', 'kms:GenerateDataKey'], resources: [replica.key.keyArn] }));
    const reason = 'S3 replication reads every object version of the vault and writes every replica: object keys cannot be listed ahead.';
    this.acknowledgeObjectWildcard(role, this.bucket.arnForObjects('*'), reason);
    this.acknowledgeObjectWildcard(role, replica.bucket.arnForObjects('*'), reason);
  }

  /**
   * cdk-nag (AwsSolutions-IAM5) names each wildcard resource by its flattened ARN. Backup object keys
   * cannot be listed ahead, so the vault acknowledges its own object patterns on the principals it
   * grants to, and callers need not know its logical ids. The ARN's final form (a GetAtt here, an
   * import or an SSM export reader from another stack or region) exists only once CDK resolves
   * references during synthesis, hence the deferral to validation.
   */
  private acknowledgeObjectWildcard(principal: iam.IPrincipal, objectArn: string, reason: string): void {
    if (!Construct.isConstruct(principal)) return;
    this.node.addValidation({
      validate: () => {
        const id = `AwsSolutions-IAM5[Resource::${nagReference(Stack.of(principal).resolve(objectArn))}]`;
        Validations.of(principal).acknowledge({ id, reason });
        return [];
      },
    });
  }
}

/**
 * The replica side of 3-2-1, deployed by the stack in `aws.replicaRegion`: the same locked, encrypted,
 * retained bucket as the vault (with its own rotating key), written only by S3 replication.
 */
export class ReplicaVault extends Construct {
  readonly bucket: s3.Bucket;
  readonly key: kms.IKey;
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: ReplicaVaultProps = {}) {
    super(scope, id);
    const lock = checkObjectLock(this, props.objectLock);
    useLogBucketPolicy(this);
    this.key = props.encryptionKey ?? vaultKey(this, 'Tidemark backup vault replica');
    this.accessLogs = accessLogBucket(this, props.accessLogRetention);
    this.bucket = new s3.Bucket(this, 'Bucket', lockedBucketProps(this.key, lock, this.accessLogs));
  }
}

function checkObjectLock(scope: Construct, lock: ObjectLockDefault = DEFAULT_OBJECT_LOCK): ObjectLockDefault {
  if (lock.mode !== 'governance' && lock.mode !== 'compliance') {
    throw new Error(`${scope.node.path}: objectLock.mode must be governance or compliance, got ${JSON.stringify(lock.mode)}`);
  }
  if (!Number.isInteger(lock.days) || lock.days < 1 || lock.days > 36500) {
    throw new Error(`${scope.node.path}: objectLock.days must be a whole number from 1 to 36500, got ${lock.days}`);
  }
  return lock;
}

/** Source names are checked by the config schema; a '*' or '/' in a grant would widen it. */
function checkSourceNames(scope: Construct, sources: readonly string[], what: string): void {
  if (sources.length === 0) throw new Error(`${scope.node.path}: ${what} needs at least one source`);
  for (const s of sources) {
    if (!/^[A-Za-z0-9._-]{1,63}$/.test(s)) throw new Error(`${scope.node.path}: ${what}: '${s}' is not a source name (letters, digits, '.', '_', '-')`);
  }
}

function checkReplicaRegion(scope: Construct, replica: VaultReplica): void {
  const here = Stack.of(scope).region;
  const there = replica.bucket.env.region;
  if (!Token.isUnresolved(here) && !Token.isUnresolved(there) && here === there) {
    throw new Error(`${scope.node.path}: the replica bucket must be in another region than the vault, both are in ${here}`
      + ' (an imported bucket needs its region: Bucket.fromBucketAttributes(..., { region }))');
  }
}

/**
 * Log delivery writes through a bucket policy, never an ACL: with the ACL path (the flag's legacy
 * default) CDK would switch the log bucket to ObjectWriter ownership behind our back.
 */
function useLogBucketPolicy(scope: Construct): void {
  scope.node.setContext(S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, true);
}

function vaultKey(scope: Construct, description: string): kms.Key {
  return new kms.Key(scope, 'Key', { description, enableKeyRotation: true, removalPolicy: RemovalPolicy.RETAIN });
}

function accessLogBucket(scope: Construct, retention = Duration.days(365)): s3.Bucket {
  const logs = new s3.Bucket(scope, 'AccessLogs', {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    // S3 log delivery cannot write with a customer managed KMS key.
    encryption: s3.BucketEncryption.S3_MANAGED,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy: RemovalPolicy.RETAIN,
    lifecycleRules: [{ id: 'ExpireOldAccessLogs', expiration: retention }],
  });
  Validations.of(logs).acknowledge({
    id: 'AwsSolutions-S1',
    reason: 'This is the access-log bucket: logging it into itself would log its own log deliveries without end, and a log bucket for the log bucket only moves this finding one bucket further.',
  });
  return logs;
}

function lockedBucketProps(key: kms.IKey, lock: ObjectLockDefault, logs: s3.IBucket): s3.BucketProps {
  const retention = Duration.days(lock.days);
  return {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    versioned: true,
    objectLockEnabled: true,
    objectLockDefaultRetention: lock.mode === 'compliance'
      ? s3.ObjectLockRetention.compliance(retention)
      : s3.ObjectLockRetention.governance(retention),
    encryption: s3.BucketEncryption.KMS,
    encryptionKey: key,
    // One KMS call per bucket key instead of per object: cheaper and far below KMS request quotas.
    bucketKeyEnabled: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy: RemovalPolicy.RETAIN,
    serverAccessLogsBucket: logs,
  };
}
