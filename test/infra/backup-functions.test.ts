import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { SourceDeployment } from '../../lib/core/config/deployment';
import { BackupFunctions, type BackupFunctionsProps } from '../../lib/infra/backup-functions';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const AZ_CONTEXT = { 'availability-zones:account=111111111111:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'] };

const SOURCES: SourceDeployment[] = [
  { name: 'app', engine: 'postgres', host: '10.0.1.5', port: 5432, rpoSeconds: 3600, secret: { env: 'TIDEMARK_SECRET_APP', secretId: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:app-db' } },
  { name: 'orders', engine: 'mysql', host: '10.0.1.6', port: 3306, rpoSeconds: 900, stream: { flushSeconds: 60 } },
];

/** Stands in for BackupVault: a bucket and a grantRead that reads it. */
function fakeVault(stack: Stack): BackupFunctionsProps['vault'] {
  const bucket = new s3.Bucket(stack, 'VaultBucket', { enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL });
  return { bucket, prefix: 'tidemark', grantRead: (grantee: iam.IGrantable) => bucket.grantRead(grantee) };
}

function synth(props: Partial<BackupFunctionsProps> = {}, context: Record<string, unknown> = { 'aws:cdk:bundling-stacks': [] }) {
  const app = new App({ builtinCloudFormationValidation: false, context: { ...AZ_CONTEXT, ...context } });
  const stack = new Stack(app, 'Functions', { env: ENV });
  const functions = new BackupFunctions(stack, 'BackupFunctions', { vault: fakeVault(stack), sources: SOURCES, ...props });
  return { app, stack, functions };
}

describe('BackupFunctions', () => {
  let stack: Stack;
  let functions: BackupFunctions;
  let template: Template;
  beforeAll(() => {
    ({ stack, functions } = synth());
    template = Template.fromStack(stack);
  });

  const logicalId = (construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as never);

  test('two Node 22 functions on ARM, with tracing, explicit log groups and the contracted timeouts', () => {
    template.resourceCountIs('AWS::Lambda::Function', 2);
    for (const [fn, timeout] of [
      [functions.recordResult, 30],
      [functions.rpoCheck, 120],
    ] as const) {
      const resource = template.findResources('AWS::Lambda::Function')[logicalId(fn)];
      expect(resource.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        MemorySize: 256,
        Timeout: timeout,
        Handler: 'index.handler',
        TracingConfig: { Mode: 'Active' },
        LoggingConfig: { LogFormat: 'Text', LogGroup: { Ref: expect.stringMatching(/Logs/) } },
      });
    }
    template.resourceCountIs('AWS::Logs::LogGroup', 2);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('the environment is the contract and holds no secret', () => {
    for (const fn of [functions.recordResult, functions.rpoCheck]) {
      const env = template.findResources('AWS::Lambda::Function')[logicalId(fn)].Properties.Environment.Variables as Record<string, unknown>;
      expect(env).toMatchObject({
        TIDEMARK_REPOSITORY_URL: { 'Fn::Join': ['', ['s3://', { Ref: expect.stringMatching(/^VaultBucket/) }, '/tidemark']] },
        TIDEMARK_SOURCES: '["app","orders"]',
        TIDEMARK_METRICS_NAMESPACE: 'Tidemark',
      });
      // Only the contract (and Node's own source-map switch); nothing named or looking like a secret.
      expect(Object.keys(env).filter((k) => k !== 'NODE_OPTIONS').sort()).toEqual(['TIDEMARK_METRICS_NAMESPACE', 'TIDEMARK_REPOSITORY_URL', 'TIDEMARK_SOURCES']);
      const text = JSON.stringify(env);
      expect(text).not.toMatch(/secret|password|TIDEMARK_SECRET_|arn:aws:secretsmanager/i);
    }
  });

  test('a namespace of its own reaches the functions', () => {
    const { stack: other, functions: fns } = synth({ namespace: 'TidemarkStaging' });
    const env = Template.fromStack(other).findResources('AWS::Lambda::Function')[other.getLogicalId(fns.rpoCheck.node.defaultChild as never)]
      .Properties.Environment.Variables;
    expect(env.TIDEMARK_METRICS_NAMESPACE).toBe('TidemarkStaging');
  });

  test('rpo-check runs every minute and is not retried late', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(functions.rpoCheck), 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: logicalId(functions.rpoCheck) },
      MaximumRetryAttempts: 0,
    });
  });

  test('roles of their own: no managed policy, read on the vault, write to their log group only', () => {
    template.resourceCountIs('AWS::IAM::Role', 2);
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('s3:GetObject*');
    expect(policies).toContain('logs:PutLogEvents');
    expect(policies).not.toMatch(/s3:PutObject|s3:DeleteObject|kms:Encrypt|logs:CreateLogGroup/);
  });

  test('cdk-nag AwsSolutions: no findings left, only the justified acknowledgments', () => {
    const report = new AwsSolutionsChecks().validateScope(functions);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  test('cdk-nag: a vault granting only its prefix of a KMS-encrypted bucket is acknowledged too', () => {
    const app = new App({ builtinCloudFormationValidation: false, context: { ...AZ_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
    const other = new Stack(app, 'Kms', { env: ENV });
    const key = new kms.Key(other, 'VaultKey', { enableKeyRotation: true });
    const bucket = new s3.Bucket(other, 'VaultBucket', { encryptionKey: key, enforceSSL: true });
    const fns = new BackupFunctions(other, 'BackupFunctions', {
      vault: { bucket, prefix: 'tidemark', grantRead: (grantee: iam.IGrantable) => bucket.grantRead(grantee, 'tidemark/*') },
      sources: SOURCES,
    });
    expect(new AwsSolutionsChecks().validateScope(fns).violations).toEqual([]);
    expect(JSON.stringify(Template.fromStack(other).findResources('AWS::IAM::Policy'))).toContain('kms:Decrypt');
  });

  test('cdk-nag: a wildcard that is neither the vault read nor X-Ray stays a finding', () => {
    const { functions: fns } = synth();
    fns.rpoCheck.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: ['arn:aws:s3:::elsewhere/*'] }));
    const findings = new AwsSolutionsChecks().validateScope(fns).violations.map((v) => v.ruleName);
    expect(findings).toEqual(['AwsSolutions-IAM5[Resource::arn:aws:s3:::elsewhere/*]']);
  });

  test('fails when sources is empty', () => {
    expect(() => synth({ sources: [] })).toThrow(/sources is empty/);
  });

  test('fails when a source is listed twice', () => {
    expect(() => synth({ sources: [SOURCES[0], SOURCES[0]] })).toThrow(/'app' is listed twice/);
  });

  test('fails when the namespace holds a colon', () => {
    expect(() => synth({ namespace: 'Tide:mark' })).toThrow(/Tide:mark/);
  });
});

// Slow (esbuild over the handlers and the SDK): one test proves bundling works offline, without Docker.
test('bundles both handlers with the local esbuild', () => {
  const { app } = synth({}, {});
  const assembly = app.synth();
  const assets = readdirSync(assembly.directory)
    .filter((name) => name.startsWith('asset.'))
    .map((name) => join(assembly.directory, name))
    .filter((dir) => statSync(dir).isDirectory() && existsSync(join(dir, 'index.js')));
  expect(assets).toHaveLength(2);
  for (const dir of assets) {
    const code = readFileSync(join(dir, 'index.js'), 'utf8');
    // toBe, not toMatch: a failure should not print a megabyte of minified code.
    expect(code.includes('TIDEMARK_REPOSITORY_URL')).toBe(true);
    // The S3 client is inside the bundle, not expected from the runtime. (The SDK's optional
    // signature-v4-crt / signature-v4a requires remain: guarded, for multi-region access points.)
    expect(code.includes('ListObjectsV2Command')).toBe(true);
    expect(/require\(["']@aws-sdk\/(client-s3|lib-storage)["']\)/.test(code)).toBe(false);
    expect(existsSync(join(dir, 'index.js.map'))).toBe(true);
  }
});
