import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { TIER_COLD, TIER_TAG_KEY, TIER_WARM } from '../../lib/core/config/tiers';
import { BackupVault, type BackupVaultProps, ReplicaVault } from '../../lib/infra/backup-vault';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const REPLICA_ENV = { account: '111111111111', region: 'eu-central-1' };

type Resource = { Type: string; Properties?: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string };
type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; Principal?: unknown; Condition?: unknown };

function newApp(): App {
  return new App({ builtinCloudFormationValidation: false, context: { 'aws:cdk:bundling-stacks': [] } });
}

/** A stack holding only a vault, and its template. */
function vaultStack(props: BackupVaultProps = {}): { app: App; stack: Stack; vault: BackupVault; template: Template } {
  const app = newApp();
  const stack = new Stack(app, 'Vault', { env: ENV });
  const vault = new BackupVault(stack, 'Vault', props);
  return { app, stack, vault, template: Template.fromStack(stack) };
}

/** The deployment the app builds with aws.replicaRegion: a replica stack, and the vault stack replicating to it. */
function replicatedVault(): { app: App; primary: Stack; replicaStack: Stack; vault: BackupVault; replica: ReplicaVault } {
  const app = newApp();
  const replicaStack = new Stack(app, 'Replica', { env: REPLICA_ENV, crossRegionReferences: true });
  const replica = new ReplicaVault(replicaStack, 'ReplicaVault');
  const primary = new Stack(app, 'Primary', { env: ENV, crossRegionReferences: true });
  const vault = new BackupVault(primary, 'Vault', { replica: { bucket: replica.bucket, key: replica.key } });
  return { app, primary, replicaStack, vault, replica };
}

function resourceOf(template: Template, id: IConstruct): Resource {
  const logicalId = Stack.of(id).resolve((id.node.defaultChild as s3.CfnBucket).logicalId) as string;
  return template.toJSON().Resources[logicalId] as Resource;
}

function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** Every statement of every identity policy and bucket policy in the template. */
function policyStatements(template: Template): Statement[] {
  const statements: Statement[] = [];
  for (const resource of Object.values(template.toJSON().Resources) as Resource[]) {
    const props = resource.Properties ?? {};
    if (['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy', 'AWS::S3::BucketPolicy'].includes(resource.Type)) {
      statements.push(...(props.PolicyDocument as { Statement: Statement[] }).Statement);
    }
    if (resource.Type === 'AWS::IAM::Role') {
      for (const inline of asArray(props.Policies as { PolicyDocument: { Statement: Statement[] } }[])) {
        statements.push(...inline.PolicyDocument.Statement);
      }
    }
  }
  return statements;
}

function cdkNagViolations(scope: IConstruct): string[] {
  // The vault acknowledges its object wildcards once references are resolved, so synthesize first.
  return new AwsSolutionsChecks().validateScope(scope).violations.map(
    (v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
  );
}

describe('BackupVault with defaults', () => {
  let vault: BackupVault;
  let stack: Stack;
  let template: Template;
  let bucket: Resource;
  beforeAll(() => {
    // GIVEN a stack with a vault and nothing else configured
    ({ vault, stack, template } = vaultStack());
    bucket = resourceOf(template, vault.bucket);
  });

  test('the bucket blocks public access, is versioned, Object-Locked 14 days in governance mode and KMS-encrypted with bucket keys', () => {
    // THEN
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      VersioningConfiguration: { Status: 'Enabled' },
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 14 } } },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: stack.resolve(vault.key.keyArn) },
        }],
      },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LoggingConfiguration: { DestinationBucketName: stack.resolve(vault.accessLogs.bucketName) },
    });
  });

  test('both buckets deny every request that is not over TLS', () => {
    // THEN
    for (const b of [vault.bucket, vault.accessLogs]) {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: stack.resolve(b.bucketName),
        PolicyDocument: {
          Statement: Match.arrayWith([Match.objectLike({
            Effect: 'Deny', Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          })]),
        },
      });
    }
  });

  test('buckets and key are retained on stack deletion and replacement, and nothing auto-deletes objects', () => {
    // THEN
    for (const type of ['AWS::S3::Bucket', 'AWS::KMS::Key']) {
      const resources = Object.values(template.findResources(type)) as Resource[];
      expect(resources.length).toBeGreaterThan(0);
      for (const r of resources) expect([r.DeletionPolicy, r.UpdateReplacePolicy]).toEqual(['Retain', 'Retain']);
    }
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
  });

  test('the key rotates', () => {
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('the access-log bucket is private, SSE-S3, written by log delivery through its policy and expires old logs', () => {
    // THEN
    const logs = resourceOf(template, vault.accessLogs);
    expect(logs.Properties).toMatchObject({
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      LifecycleConfiguration: { Rules: [{ ExpirationInDays: 365, Status: 'Enabled' }] },
    });
    expect(logs.Properties).not.toHaveProperty('AccessControl');
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: stack.resolve(vault.accessLogs.bucketName),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Effect: 'Allow', Action: 's3:PutObject', Principal: { Service: 'logging.s3.amazonaws.com' },
        Condition: { ArnLike: { 'aws:SourceArn': stack.resolve(vault.bucket.bucketArn) } },
      })]) },
    });
  });

  test('lifecycle rules implement the tier-tag contract exactly, plus aborting abandoned uploads', () => {
    // THEN
    expect(bucket.Properties?.LifecycleConfiguration).toEqual({
      Rules: [
        { Id: 'TierWarm', Status: 'Enabled', TagFilters: [{ Key: 'tidemark:tier', Value: 'warm' }], Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }] },
        { Id: 'TierCold', Status: 'Enabled', TagFilters: [{ Key: 'tidemark:tier', Value: 'cold' }], Transitions: [{ StorageClass: 'GLACIER', TransitionInDays: 0 }] },
        { Id: 'AbortIncompleteUploads', Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } },
        { Id: 'FreeDeletedVersions', Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 14 }, ExpiredObjectDeleteMarker: true },
      ],
      TransitionDefaultMinimumObjectSize: 'all_storage_classes_128K',
    });
  });

  test('untagged objects stay in STANDARD: the rules without a tag filter move nothing', () => {
    // THEN
    const rules = (bucket.Properties?.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    const untagged = rules.filter((r) => r.TagFilters === undefined);
    expect(untagged.map((r) => r.Id)).toEqual(['AbortIncompleteUploads', 'FreeDeletedVersions']);
    for (const rule of untagged) expect(JSON.stringify(rule)).not.toMatch(/Transition/);
  });

  test('retention is never a lifecycle side effect: no rule expires a current object, only versions retention already deleted', () => {
    // THEN: no Expiration (days or date) of current objects; noncurrent versions go after the lock's days
    const rules = (bucket.Properties?.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    for (const rule of rules) expect(Object.keys(rule).filter((k) => /^Expiration/.test(k))).toEqual([]);
    const free = rules.filter((r) => JSON.stringify(r).match(/Expiration|Expired/));
    expect(free).toEqual([{ Id: 'FreeDeletedVersions', Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 14 }, ExpiredObjectDeleteMarker: true }]);
  });

  test('the contract constants are the ones DESIGN.md §3 names', () => {
    expect([TIER_TAG_KEY, TIER_WARM, TIER_COLD]).toEqual(['tidemark:tier', 'warm', 'cold']);
  });

  test('the repository lives under the tidemark prefix of the bucket', () => {
    // THEN
    expect(vault.prefix).toBe('tidemark');
    expect(stack.resolve(vault.repositoryUrl)).toEqual({ 'Fn::Join': ['', ['s3://', stack.resolve(vault.bucket.bucketName), '/tidemark']] });
  });

  test('no replication and no replication role without a replica', () => {
    expect(bucket.Properties).not.toHaveProperty('ReplicationConfiguration');
    template.resourceCountIs('AWS::IAM::Role', 0);
    expect(vault.replicationRole).toBeUndefined();
  });

  test('cdk-nag AwsSolutions reports nothing for the stack, and CDK no error', () => {
    // THEN
    expect(cdkNagViolations(stack)).toEqual([]);
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  });
});

describe('BackupVault options', () => {
  test('cold objects go to DEEP_ARCHIVE when configured', () => {
    // GIVEN / WHEN
    const { vault, template } = vaultStack({ coldStorageClass: 'DEEP_ARCHIVE' });
    // THEN
    const rules = (resourceOf(template, vault.bucket).Properties?.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    expect(rules.find((r) => r.Id === 'TierCold')).toEqual({
      Id: 'TierCold', Status: 'Enabled', TagFilters: [{ Key: 'tidemark:tier', Value: 'cold' }], Transitions: [{ StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 0 }],
    });
  });

  test('compliance mode and the configured days become the default retention, and deleted versions outlive the lock', () => {
    // GIVEN / WHEN
    const { template } = vaultStack({ objectLock: { mode: 'compliance', days: 35 } });
    // THEN
    template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 35 } } },
      LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ Id: 'FreeDeletedVersions', NoncurrentVersionExpiration: { NoncurrentDays: 35 } })]) },
    });
  });

  test('a key brought by the caller encrypts the bucket and no key is created', () => {
    // GIVEN
    const app = newApp();
    const stack = new Stack(app, 'Vault', { env: ENV });
    const key = kms.Key.fromKeyArn(stack, 'Existing', 'arn:aws:kms:eu-west-1:111111111111:key/0b9e7c1e-aaaa-bbbb-cccc-123456789012');
    // WHEN
    new BackupVault(stack, 'Vault', { encryptionKey: key });
    // THEN
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::KMS::Key', 0);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { KMSMasterKeyID: key.keyArn } }] },
    });
  });

  test('fails when objectLock.days is below 1', () => {
    expect(() => vaultStack({ objectLock: { mode: 'governance', days: 0 } })).toThrow(/objectLock\.days must be a whole number from 1 to 36500, got 0/);
  });

  test('fails when objectLock.days is not a whole number', () => {
    expect(() => vaultStack({ objectLock: { mode: 'compliance', days: 1.5 } })).toThrow(/got 1\.5/);
  });

  test('fails when objectLock.mode is neither governance nor compliance', () => {
    expect(() => vaultStack({ objectLock: { mode: 'legal-hold' as 'governance', days: 7 } })).toThrow(/objectLock\.mode must be governance or compliance, got "legal-hold"/);
  });

  test('fails when the cold class is neither GLACIER nor DEEP_ARCHIVE', () => {
    expect(() => vaultStack({ coldStorageClass: 'STANDARD_IA' as 'GLACIER' })).toThrow(/coldStorageClass must be GLACIER or DEEP_ARCHIVE, got "STANDARD_IA"/);
  });

  test('fails when the replica is in the vault region', () => {
    // GIVEN a replica bucket in eu-west-1, like the vault
    const app = newApp();
    const other = new Stack(app, 'SameRegion', { env: ENV });
    const replica = new ReplicaVault(other, 'ReplicaVault');
    const stack = new Stack(app, 'Vault', { env: ENV });
    // WHEN / THEN
    expect(() => new BackupVault(stack, 'Vault', { replica: { bucket: replica.bucket, key: replica.key } }))
      .toThrow(/replica bucket must be in another region than the vault, both are in eu-west-1/);
  });

  test('fails when ReplicaVault objectLock.days is below 1', () => {
    const stack = new Stack(newApp(), 'Replica', { env: REPLICA_ENV });
    expect(() => new ReplicaVault(stack, 'ReplicaVault', { objectLock: { mode: 'governance', days: -3 } })).toThrow(/got -3/);
  });
});

describe('BackupVault grants', () => {
  const FORBIDDEN = [
    /^\*$/, /^s3:\*$/, /^kms:\*$/, /^s3:Delete/i, /^s3:PutLifecycleConfiguration$/, /^s3:BypassGovernanceRetention$/,
    /^s3:PutBucketObjectLockConfiguration$/, /^s3:PutObjectRetention$/, /^s3:PutObjectLegalHold$/, /^s3:PutBucketPolicy$/,
  ];
  let stack: Stack;
  let replicaStack: Stack;
  let vault: BackupVault;
  let templates: Template[];
  let writer: iam.Role;
  let reader: iam.Role;
  let tagger: iam.Role;
  let retention: iam.Role;
  const SOURCES = ['app', 'orders'];
  const policyOf = (role: iam.Role): Statement[] =>
    stack.resolve((role.node.findChild('DefaultPolicy') as iam.Policy).document).Statement as Statement[];

  beforeAll(() => {
    // GIVEN the replicated deployment and one role per grant
    ({ primary: stack, replicaStack, vault } = replicatedVault());
    const task = new iam.ServicePrincipal('ecs-tasks.amazonaws.com');
    writer = new iam.Role(stack, 'Writer', { assumedBy: task });
    reader = new iam.Role(stack, 'Reader', { assumedBy: task });
    tagger = new iam.Role(stack, 'Tagger', { assumedBy: task });
    retention = new iam.Role(stack, 'Retention', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    // WHEN
    vault.grantWrite(writer);
    vault.grantRead(reader);
    vault.grantTagging(tagger, SOURCES);
    vault.grantRetention(retention, SOURCES);
    templates = [Template.fromStack(stack), Template.fromStack(replicaStack)];
  });

  test('grantWrite: put, get and abort-upload under tidemark/, list the bucket, encrypt and decrypt with the key', () => {
    // THEN
    const objects = stack.resolve(vault.bucket.arnForObjects('tidemark/*'));
    expect(policyOf(writer)).toEqual([
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: stack.resolve(vault.bucket.bucketArn) },
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'], Resource: objects },
      { Effect: 'Allow', Action: ['kms:GenerateDataKey', 'kms:Decrypt', 'kms:DescribeKey'], Resource: stack.resolve(vault.key.keyArn) },
    ]);
  });

  test('grantRead: list, get under tidemark/ and decrypt only', () => {
    // THEN
    expect(policyOf(reader)).toEqual([
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: stack.resolve(vault.bucket.bucketArn) },
      { Effect: 'Allow', Action: 's3:GetObject', Resource: stack.resolve(vault.bucket.arnForObjects('tidemark/*')) },
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:DescribeKey'], Resource: stack.resolve(vault.key.keyArn) },
    ]);
  });

  /** The retained folders of the sources, as resolved ARNs: `<bucket>/tidemark/<source>/<folder>/*`. */
  const retainedArns = () => SOURCES.flatMap((s) => ['backups', 'wal', 'binlog'].map((f) => stack.resolve(vault.bucket.arnForObjects(`tidemark/${s}/${f}/*`))));

  test('tagging is granted only by grantTagging, and only under the sources\' backups/, wal/ and binlog/', () => {
    // THEN
    expect(policyOf(tagger)).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObjectTagging', 's3:PutObjectTagging'], Resource: retainedArns() },
    ]);
    expect(JSON.stringify([policyOf(writer), policyOf(reader)])).not.toMatch(/Tagging/);
  });

  test('grantRetention: read and delete under each source\'s backups/, wal/ and binlog/ only, and an explicit deny on the archives\' keys/', () => {
    // THEN
    expect(policyOf(retention)).toEqual([
      { Effect: 'Allow', Action: 's3:ListBucket', Resource: stack.resolve(vault.bucket.bucketArn) },
      { Effect: 'Allow', Action: 's3:GetObject', Resource: retainedArns() },
      { Effect: 'Allow', Action: ['kms:Decrypt', 'kms:DescribeKey'], Resource: stack.resolve(vault.key.keyArn) },
      { Effect: 'Allow', Action: 's3:DeleteObject', Resource: retainedArns() },
      { Effect: 'Deny', Action: 's3:DeleteObject', Resource: SOURCES.flatMap((s) => ['wal', 'binlog'].map((f) => stack.resolve(vault.bucket.arnForObjects(`tidemark/${s}/${f}/keys/*`)))) },
    ]);
  });

  test('only the retention role may delete, only s3:DeleteObject, and only under the source prefixes; nothing weakens the lock; no wildcard action', () => {
    // THEN: walk every statement of every policy in both templates
    const retentionPolicy = stack.resolve((retention.node.findChild('DefaultPolicy') as iam.Policy).document) as { Statement: Statement[] };
    const retentionStatements = new Set(retentionPolicy.Statement.map((st) => JSON.stringify(st)));
    const statements = templates.flatMap(policyStatements);
    expect(statements.filter((st) => st.Effect === 'Allow').length).toBeGreaterThan(8);
    const deleting: Statement[] = [];
    for (const st of statements) {
      const actions = asArray(st.Action);
      // Deny statements (the TLS guards, the keys/ guard) are the only place a wildcard action may appear.
      if (st.Effect === 'Deny') continue;
      const deletes = actions.filter((a) => /^s3:Delete/i.test(a));
      const other = actions.filter((a) => !/^s3:Delete/i.test(a) && (FORBIDDEN.some((re) => re.test(a)) || a.includes('*')));
      expect(other).toEqual([]);
      if (deletes.length === 0) continue;
      deleting.push(st);
      // (CDK may merge the read grant on the same resources into this statement: those are checked above.)
      expect(deletes).toEqual(['s3:DeleteObject']);
      expect(st.Principal).toBeUndefined(); // an identity policy, not a bucket policy granting someone
      expect(retentionStatements.has(JSON.stringify(st))).toBe(true);
    }
    expect(deleting).toHaveLength(1);
    const resources = asArray(deleting[0].Resource as unknown[]).map((r) => JSON.stringify(r));
    expect(resources).toEqual(retainedArns().map((r) => JSON.stringify(r)));
    // Never the repository marker, drills or a keys/ folder: every resource ends in /<source>/<folder>/*.
    for (const r of resources) expect(r).toMatch(/\/tidemark\/(app|orders)\/(backups|wal|binlog)\/\*"\]\]\}$/);
  });

  test('fails when grantRetention or grantTagging is given a name that would widen the grant', () => {
    const role = new iam.Role(stack, 'Bad', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    expect(() => vault.grantRetention(role, ['*'])).toThrow(/grantRetention: '\*' is not a source name/);
    expect(() => vault.grantTagging(role, ['app/backups'])).toThrow(/grantTagging: 'app\/backups' is not a source name/);
    expect(() => vault.grantRetention(role, [])).toThrow(/grantRetention needs at least one source/);
  });

  test('cdk-nag AwsSolutions: the object wildcards of the grants are acknowledged by the vault', () => {
    expect(cdkNagViolations(stack)).toEqual([]);
  });
});

describe('BackupVault replicating to a ReplicaVault in another region', () => {
  let primary: Stack;
  let replicaStack: Stack;
  let vault: BackupVault;
  let replica: ReplicaVault;
  let template: Template;
  let replicaTemplate: Template;
  beforeAll(() => {
    // GIVEN / WHEN the two stacks the app builds with aws.replicaRegion
    ({ primary, replicaStack, vault, replica } = replicatedVault());
    template = Template.fromStack(primary);
    replicaTemplate = Template.fromStack(replicaStack);
  });

  test('the vault replicates every object, re-encrypted with the replica key, and keeps delete markers to itself', () => {
    // THEN
    const replication = resourceOf(template, vault.bucket).Properties?.ReplicationConfiguration as { Role: unknown; Rules: Record<string, unknown>[] };
    expect(replication.Role).toEqual(primary.resolve(vault.replicationRole?.roleArn));
    expect(replication.Rules).toHaveLength(1);
    expect(replication.Rules[0]).toMatchObject({
      Status: 'Enabled',
      Filter: { Prefix: '' },
      DeleteMarkerReplication: { Status: 'Disabled' },
      SourceSelectionCriteria: { SseKmsEncryptedObjects: { Status: 'Enabled' } },
    });
    // The replica's ARNs cross regions through CDK's export reader (crossRegionReferences).
    const destination = JSON.stringify(replication.Rules[0]?.Destination);
    expect(destination).toMatch(/"Bucket":\{"Fn::GetAtt":\["ExportsReader[0-9A-F]+","[^"]*ReplicaVaultBucket[^"]*Arn/);
    expect(destination).toMatch(/"ReplicaKmsKeyID":\{"Fn::GetAtt":\["ExportsReader[0-9A-F]+","[^"]*ReplicaVaultKey[^"]*Arn/);
  });

  test('the replication role is assumed by S3 and may only read source versions, replicate into the replica, and use the two keys', () => {
    // THEN
    const role = vault.replicationRole as iam.Role;
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Action: 'sts:AssumeRole', Principal: { Service: 's3.amazonaws.com' } })] },
    });
    const statements = primary.resolve((role.node.findChild('DefaultPolicy') as iam.Policy).document).Statement as Statement[];
    const readerArn = (name: string) => Match.objectLike({ 'Fn::GetAtt': [Match.stringLikeRegexp('^ExportsReader'), Match.stringLikeRegexp(`${name}.*Arn`)] });
    const join = (arn: unknown, suffix: string) => ({ 'Fn::Join': ['', [arn, suffix]] });
    expect(statements).toEqual([
      { Effect: 'Allow', Action: ['s3:GetReplicationConfiguration', 's3:ListBucket'], Resource: primary.resolve(vault.bucket.bucketArn) },
      {
        Effect: 'Allow',
        Action: ['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging', 's3:GetObjectRetention', 's3:GetObjectLegalHold'],
        Resource: join(primary.resolve(vault.bucket.bucketArn), '/*'),
      },
      { Effect: 'Allow', Action: ['s3:ReplicateObject', 's3:ReplicateTags'], Resource: expect.objectContaining({ 'Fn::Join': ['', [expect.anything(), '/*']] }) },
      { Effect: 'Allow', Action: 'kms:Decrypt', Resource: primary.resolve(vault.key.keyArn) },
      { Effect: 'Allow', Action: ['kms:Encrypt', 'kms:GenerateDataKey'], Resource: expect.anything() },
    ]);
    // And the cross-region targets are the replica's bucket and key, not something else.
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([
        Match.objectLike({ Action: ['s3:ReplicateObject', 's3:ReplicateTags'], Resource: { 'Fn::Join': ['', [readerArn('ReplicaVaultBucket'), '/*']] } }),
        Match.objectLike({ Action: ['kms:Encrypt', 'kms:GenerateDataKey'], Resource: readerArn('ReplicaVaultKey') }),
      ]) },
    });
  });

  test('the replica bucket is locked, versioned, private, TLS-only, encrypted with its own rotating key and retained', () => {
    // THEN
    const bucket = resourceOf(replicaTemplate, replica.bucket);
    expect([bucket.DeletionPolicy, bucket.UpdateReplacePolicy]).toEqual(['Retain', 'Retain']);
    expect(bucket.Properties).toMatchObject({
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      VersioningConfiguration: { Status: 'Enabled' },
      ObjectLockEnabled: true,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 14 } } },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: replicaStack.resolve(replica.key.keyArn) },
      }] },
      LoggingConfiguration: { DestinationBucketName: replicaStack.resolve(replica.accessLogs.bucketName) },
    });
    replicaTemplate.hasResource('AWS::KMS::Key', { Properties: Match.objectLike({ EnableKeyRotation: true }), DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    replicaTemplate.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: replicaStack.resolve(replica.bucket.bucketName),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    expect(JSON.stringify(bucket.Properties)).not.toMatch(/LifecycleConfiguration|Expiration/);
  });

  test('cdk-nag AwsSolutions reports nothing for either stack', () => {
    // THEN
    expect([...cdkNagViolations(primary), ...cdkNagViolations(replicaStack)]).toEqual([]);
  });

  test('the only acknowledgments are the access-log buckets (S1) and the replication wildcards (IAM5), each with a reason', () => {
    // THEN
    const acknowledged = [primary, replicaStack].flatMap((s) => s.node.findAll())
      .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules').map((m) => ({ path: c.node.path, data: m.data as Record<string, string> })))
      .flatMap(({ path, data }) => Object.entries(data).map(([id, reason]) => ({ path, id, reason })));
    for (const { reason } of acknowledged) expect(reason.length).toBeGreaterThan(40);
    // Stored as '<namespace>::<rule id>'; the IAM5 ids name the two bucket ARNs, which we check as such.
    const ids = [...new Set(acknowledged.map(({ path, id }) => `${path} ${id.replace(/^\w+::/, '')}`))].sort();
    expect(ids).toEqual([
      'Primary/Vault/AccessLogs AwsSolutions-S1',
      expect.stringMatching(/^Primary\/Vault\/ReplicationRole AwsSolutions-IAM5\[Resource::<ExportsReader\w+\.\/cdk\/exports\/Primary\/\w*ReplicaVaultBucket\w+Arn\w+>\/\*\]$/),
      expect.stringMatching(/^Primary\/Vault\/ReplicationRole AwsSolutions-IAM5\[Resource::<VaultBucket\w+\.Arn>\/\*\]$/),
      'Replica/ReplicaVault/AccessLogs AwsSolutions-S1',
    ]);
  });
});
