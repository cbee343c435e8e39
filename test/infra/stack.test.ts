import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { stringify } from 'yaml';
import { loadConfig, parseConfig } from '../../lib/core/config/load';
import type { TidemarkConfig } from '../../lib/core/config/schema';
import { buildTidemarkApp } from '../../lib/infra/tidemark-app';
import { StackOutputNames, streamerServiceOutput, tidemarkStackName } from '../../lib/core/config/stack-outputs';
import { stackName } from '../../lib/infra/tidemark-app';
import type { TidemarkStack } from '../../lib/infra/tidemark-stack';

const ROOT = join(__dirname, '../..');
const CDK_CONTEXT: Record<string, unknown> = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;

/** Synthesizes a config the way bin/app.ts does (cdk-nag included), without bundling assets. */
function synth(config: TidemarkConfig): { app: App; stacks: TidemarkStack[]; templates: Template[] } {
  const outdir = mkdtempSync(join(tmpdir(), 'tidemark-synth-'));
  // CDK's CloudFormation validation stays on here, as `cdk synth` runs it; the other infra tests and
  // the local runs (lib/infra/offline-synth.ts) turn it off: 3.6 s a stack on the 2-core test host.
  const app = new App({ outdir, context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
  const stacks = buildTidemarkApp(app, config);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth(); // policy validation (cdk-nag) throws on any unacknowledged error
    return { app, stacks, templates: stacks.map((s) => Template.fromStack(s)) };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** Every IAM and resource policy statement in a template. */
function statements(template: Template): { Effect: string; Action: string | string[]; Resource?: unknown; where: string }[] {
  const out: { Effect: string; Action: string | string[]; Resource?: unknown; where: string }[] = [];
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  for (const [id, r] of Object.entries(resources)) {
    const docs: unknown[] = [];
    const p = r.Properties ?? {};
    if (p.PolicyDocument) docs.push(p.PolicyDocument);
    if (p.KeyPolicy) continue; // key policies are the account's (root kms:*), not grants to backup code
    for (const inline of (p.Policies as { PolicyDocument: unknown }[] | undefined) ?? []) docs.push(inline.PolicyDocument);
    for (const doc of docs) {
      for (const s of (doc as { Statement: { Effect: string; Action: string | string[] }[] }).Statement) out.push({ ...s, where: id });
    }
  }
  return out;
}

const actions = (s: { Action: string | string[] }) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('the Tidemark app', () => {
  let financial: ReturnType<typeof synth>;
  let template: Template;

  beforeAll(async () => {
    financial = synth((await loadConfig(join(ROOT, 'examples/financial.yaml'))).config);
    template = financial.templates[0];
  });

  it('builds one stack per account/region and a replica stack for the financial example', () => {
    const names = financial.app.node.children.filter((c) => Stack.isStack(c)).map((c) => c.node.id).sort();
    expect(names).toEqual(['Tidemark-111111111111-eu-central-1-replica', 'Tidemark-111111111111-eu-west-1']);
  });

  it('schedules full, incremental and logical runs in the configured time zone', () => {
    // Backup schedules only (their input has `runs`); drill schedules are tested in drill-state-machine.test.ts,
    // retention and tiering have no state machine input.
    const schedules = Object.fromEntries(
      Object.entries(template.findResources('AWS::Scheduler::Schedule')).filter(([, s]) => s.Properties.Target.Input && JSON.parse(s.Properties.Target.Input).runs !== undefined),
    );
    const expressions = Object.values(schedules).map((s) => [s.Properties.ScheduleExpression, s.Properties.ScheduleExpressionTimezone]);
    expect(expressions.sort()).toEqual([
      ['cron(0 * * * ? *)', 'Europe/Berlin'],
      ['cron(0 4 ? * 1 *)', 'Europe/Berlin'],
      ['cron(30 1 * * ? *)', 'Europe/Berlin'],
    ]);
    const inputs = Object.values(schedules).map((s) => JSON.parse(s.Properties.Target.Input).runs);
    expect(inputs).toContainEqual([{ source: 'payments', type: 'incr' }]);
  });

  it('runs retention and tiering on the schedules of aws.maintenance, in the configured time zone', () => {
    const byTarget = Object.values(template.findResources('AWS::Scheduler::Schedule'))
      .filter((s) => s.Properties.Target.Input === undefined)
      .map((s) => [s.Properties.Description, s.Properties.ScheduleExpression, s.Properties.ScheduleExpressionTimezone]);
    expect(byTarget.sort()).toEqual([
      ['Tidemark: applies retention', 'cron(30 5 * * ? *)', 'Europe/Berlin'],
      ['Tidemark: applies tiering', 'cron(15 5 * * ? *)', 'Europe/Berlin'],
    ]);
  });

  it('wires the worker: config without secrets, the password as an ECS secret, a streamer running `stream`', () => {
    const taskDefs = template.findResources('AWS::ECS::TaskDefinition');
    const containers = Object.values(taskDefs).flatMap((t) => t.Properties.ContainerDefinitions);
    const worker = containers.find((c) => !c.Command);
    expect(JSON.stringify(worker.Environment)).not.toMatch(/secretsmanager|secret:/);
    expect(worker.Secrets).toEqual([
      expect.objectContaining({ Name: 'TIDEMARK_SECRET_PAYMENTS', ValueFrom: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:tidemark/payments-Xy12Ab' }),
    ]);
    expect(containers.map((c) => c.Command).filter(Boolean)).toEqual([['stream', 'payments']]);
    template.resourceCountIs('AWS::ECS::Service', 1);
  });

  it('alarms when the newest restorable point is older than the 5-minute RPO, treating missing data as breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'SecondsSinceNewestRestorablePoint',
      Dimensions: [{ Name: 'Source', Value: 'payments' }],
      Threshold: 300,
      TreatMissingData: 'breaching',
    });
  });

  it('replicates the vault to the second region and locks objects in compliance mode', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 35 } } },
      ReplicationConfiguration: Match.objectLike({ Rules: [Match.objectLike({ Status: 'Enabled' })] }),
    });
  });

  it('lets nothing but the retention function delete backup objects, and grants no `*` action', () => {
    const all = statements(template).filter((s) => s.Effect === 'Allow');
    expect(all.length).toBeGreaterThan(10);
    // The retention role's one delete statement (its scope is test/infra/backup-vault.test.ts's business).
    const deletes = all.filter((s) => actions(s).some((a) => /^s3:Delete/.test(a)));
    expect(deletes.map((s) => [s.where.replace(/[0-9A-F]{8}$/, ''), actions(s).filter((a) => /Delete/.test(a))])).toEqual([['RetentionRetentionRoleDefaultPolicy', ['s3:DeleteObject']]]);
    for (const s of all.filter((st) => !deletes.includes(st))) {
      for (const a of actions(s)) {
        expect({ where: s.where, action: a }).not.toEqual({ where: s.where, action: expect.stringMatching(/^(\*|s3:\*|kms:\*|s3:Delete.*|s3:PutLifecycleConfiguration|s3:BypassGovernanceRetention|s3:PutObjectRetention|s3:PutBucketObjectLockConfiguration)$/) });
      }
    }
  });

  it('exports what `tidemark run --aws` and `status --aws` read: the backup state machine, the vault, the cluster, each streamer', () => {
    // GIVEN the financial example (one streaming source, payments)
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    const resources = template.toJSON().Resources as Record<string, { Type: string }>;
    const refTo = (output: string) => {
      const value = outputs[output]?.Value as { Ref?: string; 'Fn::GetAtt'?: [string, string] } | undefined;
      return resources[value?.Ref ?? value?.['Fn::GetAtt']?.[0] ?? '']?.Type;
    };

    // THEN each output is under its exact key and names the resource the CLI expects
    expect(refTo(StackOutputNames.backupStateMachine)).toBe('AWS::StepFunctions::StateMachine');
    expect(refTo(streamerServiceOutput('payments'))).toBe('AWS::ECS::Service');
    expect(outputs[StackOutputNames.workersCluster].Value).toEqual({ 'Fn::GetAtt': [expect.any(String), 'Arn'] });
    expect(refTo(StackOutputNames.workersCluster)).toBe('AWS::ECS::Cluster');
    expect(JSON.stringify(outputs[StackOutputNames.repositoryUrl].Value)).toMatch(/s3:\/\/.*\/tidemark/);
    // The drill state machine's output is declared by the drill work through exportStateMachine.
    expect(Object.keys(outputs).filter((k) => k.startsWith('StreamerService'))).toEqual([streamerServiceOutput('payments')]);
  });

  it('names stacks the way the CLI looks them up', () => {
    expect(tidemarkStackName('111111111111', 'eu-west-1')).toBe(stackName('111111111111', 'eu-west-1'));
  });

  it('streamer output keys are alphanumeric and distinct for names that differ only in punctuation', () => {
    const keys = ['ab', 'a-b', 'a.b', 'a_b', 'payments'].map(streamerServiceOutput);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of keys) expect(key).toMatch(/^[A-Za-z0-9]{1,255}$/);
    expect(streamerServiceOutput('payments')).toBe('StreamerServicepayments');
  });

  it('the worker role can put objects but not delete them', () => {
    const workerPolicies = statements(template).filter((s) => /^WorkersTaskRole/.test(s.where));
    const granted = workerPolicies.flatMap(actions);
    expect(granted).toContain('s3:PutObject');
    expect(granted.filter((a) => /Delete/.test(a))).toEqual([]);
  });

  it('synthesizes a fleet of 50 sources across two accounts, cdk-nag clean', () => {
    const sources = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [
        `db${String(i).padStart(2, '0')}`,
        {
          engine: i % 3 === 0 ? 'mysql' : 'postgres',
          url: i % 3 === 0 ? `mysql://backup@10.90.${i}.5:3306/app` : `postgres://backup@10.90.${i}.5:5432/app`,
          password: `secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:db${i}-AbCdEf`,
          schedule: { logical: `${i % 60} 2 * * *`, ...(i % 5 === 0 ? { full: '0 1 * * 0' } : {}) },
          ...(i % 10 === 0 ? { stream: { flushSeconds: 30 }, rpo: '5m' } : {}),
          ...(i >= 40 ? { aws: { account: '222222222222' } } : {}),
        },
      ]),
    );
    const config = parseConfig(
      stringify({ repository: 'file:///var/backups/tidemark', encryption: { key: 'env:K' }, aws: { account: '111111111111', region: 'eu-west-1' }, sources }),
      'fleet.yaml',
    );
    const { stacks, templates } = synth(config);
    expect(stacks.map((s) => s.stackName).sort()).toEqual(['Tidemark-111111111111-eu-west-1', 'Tidemark-222222222222-eu-west-1']);
    const first = templates[stacks.findIndex((s) => s.account === '111111111111')];
    first.resourcePropertiesCountIs('AWS::CloudWatch::Alarm', { MetricName: 'SecondsSinceNewestRestorablePoint' }, 40);
    first.resourceCountIs('AWS::ECS::Service', 4);
    // One output per streamer, even with 40 sources in the stack (CloudFormation allows 200).
    expect(Object.keys(first.toJSON().Outputs).filter((k) => k.startsWith('StreamerService')).sort()).toEqual(
      ['db00', 'db10', 'db20', 'db30'].map(streamerServiceOutput),
    );
  });
});

describe('examples/', () => {
  const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'));

  it.each(examples)('%s synthesizes, cdk-nag clean', async (file) => {
    const { stacks } = synth((await loadConfig(join(ROOT, 'examples', file))).config);
    expect(stacks.length).toBeGreaterThan(0);
  });

  it('`npx cdk synth` works offline, without AWS credentials, bundling the Lambdas', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'tidemark-cdk-'));
    try {
      const result = spawnSync('npx', ['cdk', 'synth', '--quiet', '-c', 'config=examples/rds-and-mysql.yaml', '--output', outdir], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: 'tidemark-none' },
      });
      // The CDK CLI logs to stderr, or to stdout when CI=true: look at both.
      expect(`${result.stdout}${result.stderr}`).toMatch(/Successfully synthesized/);
      expect(result.status).toBe(0);
      const files = readdirSync(outdir);
      expect(files).toEqual(expect.arrayContaining(['Tidemark-111111111111-eu-west-1.template.json', 'Tidemark-222222222222-eu-west-1.template.json']));
      const bundles = files.filter((f) => f.startsWith('asset.') && existsSync(join(outdir, f, 'index.js')));
      expect(bundles.length).toBeGreaterThanOrEqual(2); // record-result and rpo-check, bundled by esbuild
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('bin/app.ts (the CDK app as `cdk synth` runs it)', () => {
  const run = (configPath: string, outdir: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin/app.ts')], {
      cwd: ROOT,
      env: { ...process.env, TIDEMARK_CONFIG: configPath, CDK_OUTDIR: outdir, CDK_CONTEXT_JSON: JSON.stringify({ ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] }) },
      encoding: 'utf8',
    });

  it.each([
    ['an unknown engine', { engine: 'oracle' }, /sources\.app\.engine: expected postgres or mysql, got "oracle"/],
    ['a bad cron', { schedule: { full: '0 25 * * *' } }, /sources\.app\.schedule\.full: not a valid cron schedule \(hour '25' is not in 0-23\)/],
    ['full: 0', { schedule: { full: 0 } }, /sources\.app\.schedule\.full: expected a string, got 0/],
    ['an RPO shorter than the stream flush', { rpo: '30s', stream: { flushSeconds: 60 } }, /sources\.app\.rpo: RPO 30s is shorter than stream\.flushSeconds \(1m\)/],
    ['a password that cannot reach AWS', { password: 'env:APP_PASSWORD' }, /sources\.app\.password: env: references cannot reach a worker on AWS/],
  ])('fails synth with the key named for %s', (_what, override, message) => {
    const dir = mkdtempSync(join(tmpdir(), 'tidemark-badcfg-'));
    try {
      const path = join(dir, 'bad.yaml');
      writeFileSync(
        path,
        stringify({
          repository: 'file:///var/backups/tidemark',
          encryption: { key: 'env:K' },
          aws: { account: '111111111111', region: 'eu-west-1' },
          sources: { app: { engine: 'postgres', url: 'postgres://backup@10.0.0.5:5432/app', ...override } },
        }),
      );
      const result = run(path, join(dir, 'out'));
      expect(result.status).toBe(1);
      expect(result.stderr.trim()).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
