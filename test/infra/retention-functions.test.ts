import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { RETENTION_DEFAULTS, type SourcePolicy } from '../../lib/core/config/retention';
import { objectLockDaysFromEnvironment, retentionPoliciesFromEnvironment } from '../../lib/core/lambda-environment';
import { BackupObservability } from '../../lib/infra/backup-observability';
import { BackupVault } from '../../lib/infra/backup-vault';
import { encodePolicies, RetentionFunctions, type RetentionFunctionsProps } from '../../lib/infra/retention-functions';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const POLICY: SourcePolicy = { retention: { ...RETENTION_DEFAULTS, longTerm: { ...RETENTION_DEFAULTS.longTerm } }, tiers: { warmAfterDays: 30, coldAfterDays: 90, coldClass: 'GLACIER' } };
const POLICIES: Record<string, SourcePolicy> = {
  app: POLICY,
  orders: { ...POLICY, retention: { ...POLICY.retention, logical: 7, archiveDays: 14 } },
  billing: POLICY,
};

type Statement = { Effect: string; Action: string | string[]; Resource?: unknown };

function synth(props: Partial<RetentionFunctionsProps> = {}) {
  const app = new App({ builtinCloudFormationValidation: false, context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Retention', { env: ENV });
  const vault = new BackupVault(stack, 'Vault', { objectLock: { mode: 'compliance', days: 30 } });
  const functions = new RetentionFunctions(stack, 'Retention', { vault, policies: POLICIES, objectLockDays: 30, timeZone: 'Europe/Berlin', ...props });
  const observability = new BackupObservability(stack, 'Observability', { sources: [{ name: 'app', engine: 'postgres', host: 'h', port: 5432, rpoSeconds: 3600 }] });
  observability.watchFunction('Retention', functions.retention, 'retention');
  observability.watchFunction('Tiering', functions.tiering, 'tiering');
  return { app, stack, vault, functions, observability, template: Template.fromStack(stack) };
}

describe('RetentionFunctions', () => {
  let s: ReturnType<typeof synth>;
  beforeAll(() => {
    // GIVEN a vault, the two functions for three sources, and the alarms on them
    s = synth();
  });
  const fnResource = (fn: { node: { defaultChild?: unknown } }) => s.template.toJSON().Resources[s.stack.getLogicalId(fn.node.defaultChild as never)] as { Properties: Record<string, unknown> };
  const statementsOf = (fn: { role?: iam.IRole }) => s.stack.resolve(((fn.role as iam.Role).node.findChild('DefaultPolicy') as iam.Policy).document).Statement as Statement[];
  const actions = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);

  test('two Node 22 functions with 1 GB and 15 minutes, their own logs, retried twice', () => {
    for (const fn of [s.functions.retention, s.functions.tiering]) {
      expect(fnResource(fn).Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        MemorySize: 1024,
        Timeout: 900,
        Handler: 'index.handler',
        LoggingConfig: { LogFormat: 'Text', LogGroup: { Ref: expect.stringMatching(/Logs/) } },
      });
    }
    s.template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 2);
    s.template.allResourcesProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2 });
  });

  test('the environment holds the repository, the policies the handlers read back, and the lock days; no secret', () => {
    const saved = { ...process.env };
    try {
      for (const fn of [s.functions.retention, s.functions.tiering]) {
        const vars = (fnResource(fn).Properties.Environment as { Variables: Record<string, unknown> }).Variables;
        expect(Object.keys(vars).sort()).toEqual(['TIDEMARK_OBJECT_LOCK_DAYS', 'TIDEMARK_REPOSITORY_URL', 'TIDEMARK_RETENTION_POLICIES']);
        expect(vars.TIDEMARK_REPOSITORY_URL).toEqual({ 'Fn::Join': ['', ['s3://', s.stack.resolve(s.vault.bucket.bucketName), '/tidemark']] });
        // WHEN the handlers parse what the stack wrote
        process.env.TIDEMARK_RETENTION_POLICIES = vars.TIDEMARK_RETENTION_POLICIES as string;
        process.env.TIDEMARK_OBJECT_LOCK_DAYS = vars.TIDEMARK_OBJECT_LOCK_DAYS as string;
        // THEN they get exactly each source's policy, and the lock
        expect(retentionPoliciesFromEnvironment()).toEqual(POLICIES);
        expect(objectLockDaysFromEnvironment()).toBe(30);
        expect(JSON.stringify(vars)).not.toMatch(/secret|password|KEY=/i);
      }
    } finally {
      process.env = saved;
    }
  });

  test('sources sharing a policy share one entry, so 300 sources fit the 4 KB environment', () => {
    expect(JSON.parse(encodePolicies(POLICIES))).toHaveLength(2);
    const fleet = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`db${i}`, POLICY]));
    expect(encodePolicies(fleet).length).toBeLessThan(3000);
    expect(() => synth({ policies: fleet })).not.toThrow();
  });

  test('fails when the policies would not fit Lambda\'s environment', () => {
    const distinct = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`db${i}`, { ...POLICY, retention: { ...POLICY.retention, logical: i + 1 } }]));
    expect(() => synth({ policies: distinct })).toThrow(/the policies of 40 sources make \d+ bytes of environment; Lambda allows 4 KB/);
  });

  test('fails when there is no source, or the lock days or a cron are malformed', () => {
    expect(() => synth({ policies: {} })).toThrow(/policies is empty/);
    expect(() => synth({ objectLockDays: 0 })).toThrow(/objectLockDays must be a whole number of days, at least 1, got 0/);
    expect(() => synth({ retentionCron: '15 4 * * *' })).toThrow(/RetentionSchedule must be a six-field EventBridge cron\(\.\.\.\) expression, got "15 4 \* \* \*"/);
  });

  test('each runs daily from EventBridge Scheduler in the deployment\'s time zone, retention first', () => {
    const schedules = s.template.findResources('AWS::Scheduler::Schedule');
    const byTarget = new Map(Object.values(schedules).map((r) => [JSON.stringify((r.Properties as { Target: { Arn: unknown } }).Target.Arn), r.Properties as Record<string, unknown>]));
    const of = (fn: typeof s.functions.retention) => byTarget.get(JSON.stringify(s.stack.resolve(fn.functionArn)));
    expect(of(s.functions.retention)).toMatchObject({ ScheduleExpression: 'cron(15 4 * * ? *)', ScheduleExpressionTimezone: 'Europe/Berlin', FlexibleTimeWindow: { Mode: 'OFF' }, State: 'ENABLED' });
    expect(of(s.functions.tiering)).toMatchObject({ ScheduleExpression: 'cron(15 5 * * ? *)', ScheduleExpressionTimezone: 'Europe/Berlin' });
    expect(Object.keys(schedules)).toHaveLength(2);
    // Each schedule's role may invoke its one function (and its versions), nothing else.
    for (const [schedule, fn] of [[s.functions.retentionSchedule, s.functions.retention], [s.functions.tieringSchedule, s.functions.tiering]] as const) {
      const roleArn = (s.stack.resolve((schedule.node.defaultChild as unknown as { target: { roleArn: string } }).target) as { roleArn: { 'Fn::GetAtt': [string, string] } }).roleArn;
      const policies = Object.values(s.template.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleArn['Fn::GetAtt'][0] }]));
      const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
      const arn = s.stack.resolve(fn.functionArn);
      expect(statements).toEqual([{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: [arn, { 'Fn::Join': ['', [arn, ':*']] }] }]);
    }
  });

  test('only the retention role deletes, only under the three sources\' backups/, wal/ and binlog/', () => {
    const retained = ['app', 'orders', 'billing'].flatMap((src) => ['backups', 'wal', 'binlog'].map((f) => s.stack.resolve(s.vault.bucket.arnForObjects(`tidemark/${src}/${f}/*`))));
    const retention = statementsOf(s.functions.retention);
    expect(retention.filter((st) => st.Effect === 'Allow' && actions(st).some((a) => /Delete/.test(a)))).toEqual([{ Effect: 'Allow', Action: 's3:DeleteObject', Resource: retained }]);
    // The tiering role: read, and the tier tag under the same folders; nothing that deletes or moves by itself.
    const tiering = statementsOf(s.functions.tiering);
    expect(tiering.flatMap(actions).sort()).toEqual(['kms:Decrypt', 'kms:DescribeKey', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:GetObjectTagging', 's3:ListBucket', 's3:PutObjectTagging']);
    expect(tiering.find((st) => actions(st).includes('s3:PutObjectTagging'))?.Resource).toEqual(retained);
    // Both read only what they plan over: never the repository marker, drills or other prefixes.
    for (const statements of [retention, tiering]) expect(statements.find((st) => actions(st).includes('s3:GetObject'))?.Resource).toEqual(retained);
    expect(tiering.every((st) => st.Effect === 'Allow')).toBe(true);
  });

  test('a failure of either function raises an alarm to the topic, and the dashboard graphs their runs', () => {
    for (const [key, fn] of [['RetentionFailed', s.functions.retention], ['TieringFailed', s.functions.tiering]] as const) {
      const alarm = s.observability.alarms.get(key)!;
      expect(alarm).toBeDefined();
      s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: Match.stringLikeRegexp(`-${key}$`),
        MetricName: 'Errors',
        Namespace: 'AWS/Lambda',
        Dimensions: [{ Name: 'FunctionName', Value: s.stack.resolve(fn.functionName) }],
        Statistic: 'Sum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [s.stack.resolve(s.observability.topic.topicArn)],
      });
    }
    const body = JSON.stringify(s.stack.resolve((s.observability.dashboard.node.defaultChild as unknown as { dashboardBody: unknown }).dashboardBody));
    expect(body).toMatch(/retention runs/);
    expect(body).toMatch(/tiering runs/);
  });

  test('cdk-nag AwsSolutions reports nothing, and CDK no error', () => {
    const violations = new AwsSolutionsChecks().validateScope(s.stack).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
    expect(violations).toEqual([]);
    expect(Annotations.fromStack(s.stack).findError('*', Match.anyValue())).toEqual([]);
  });
});
