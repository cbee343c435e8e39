import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig } from '../../lib/core/config/load';
import { DRILL_SCHEDULE_DEFAULTS } from '../../lib/core/config/drill';
import { buildTidemarkApp } from '../../lib/infra/tidemark-app';
import { RDS_DRILL_TAG } from '../../lib/core/aws/drill-execution';
import { DRILL_RECORDED_STATE, DRILL_TARGET_STATE } from '../../lib/core/commands/drill-teardown';
import { DRILL_INSTANCE_PREFIX, DRILL_INSTANCE_TAG, DrillStateNames as S } from '../../lib/infra/drill-state-machine';
import { stateMachineDefinition } from '../../lib/local/template-definition';

/*
 * The drill state machine as `cdk deploy` creates it from a config with a self-managed source
 * (with an RTO and its own drill schedule) and an RDS instance source: clean under cdk-nag, and
 * its definition walked as a graph to prove that no path out of provisioning skips teardown.
 */

const ROOT = join(__dirname, '../..');
const CDK_CONTEXT: Record<string, unknown> = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;

const CONFIG = {
  repository: 'file:///unused',
  encryption: { key: 'env:TIDEMARK_KEY' },
  aws: { account: '111111111111', region: 'eu-west-1', timeZone: 'Europe/Berlin' },
  sources: {
    app: {
      engine: 'postgres',
      url: 'postgres://backup@10.0.1.5:5432/app',
      rto: '1h',
      drill: { schedule: { restore: '30 2 * * 3' }, assertions: [{ name: 'orders', sql: 'select count(*) > 0 from orders', expect: true }] },
    },
    orders: {
      engine: 'postgres',
      url: 'postgres://tidemark@orders.abcdefghij.eu-west-1.rds.amazonaws.com:5432/orders',
      password: 'secret:arn:aws:secretsmanager:eu-west-1:111111111111:secret:rds!db-1234-AbCdEf',
      rds: { instance: 'orders' },
    },
  },
};

type State = {
  Type: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string }[];
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath?: string }[];
  Retry?: { ErrorEquals: string[] }[];
  Resource?: string;
  Parameters?: Record<string, unknown>;
  TimeoutSeconds?: number;
};

/** Every successor of a state: Next, Choice branches and Default, Catch targets. */
function successors(state: State): string[] {
  return [state.Next, state.Default, ...(state.Choices ?? []).map((c) => c.Next), ...(state.Catch ?? []).map((c) => c.Next)].filter(
    (n): n is string => n !== undefined,
  );
}

/**
 * Whether some path from `from` reaches a terminal state without passing through one of `through`
 * (the walk stops at those). Returns such a path, or undefined when every path passes through.
 */
function pathAvoiding(states: Record<string, State>, from: string, through: ReadonlySet<string>): string[] | undefined {
  const seen = new Set<string>();
  const walk = (name: string, path: string[]): string[] | undefined => {
    if (through.has(name)) return undefined;
    if (seen.has(name)) return undefined; // a loop returns to where another branch already looks
    seen.add(name);
    const state = states[name];
    const next = successors(state);
    // A Task can fail with an error no Catch names: then the execution ends right there.
    const uncaught = state.Type === 'Task' && !(state.Catch ?? []).some((c) => c.ErrorEquals.includes('States.ALL'));
    if (next.length === 0 || uncaught) return [...path, name];
    for (const n of next) {
      const found = walk(n, [...path, name]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(from, []);
}

describe('the drill state machine in the Tidemark stack', () => {
  let template: Template;
  let definition: { StartAt: string; States: Record<string, State> };

  beforeAll(() => {
    const outdir = mkdtempSync(join(tmpdir(), 'tidemark-drill-synth-'));
    try {
      const app = new App({ outdir, builtinCloudFormationValidation: false, context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
      const [stack] = buildTidemarkApp(app, parseConfig(JSON.stringify(CONFIG), 'drill.json'));
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      app.synth(); // cdk-nag: any unacknowledged error throws
      template = Template.fromStack(stack);
      definition = stateMachineDefinition(template.toJSON(), 'DrillStateMachine') as typeof definition;
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  test('every state named in the contract exists, and nothing else is unnamed', () => {
    for (const name of Object.values(S)) expect(Object.keys(definition.States)).toContain(name);
  });

  test('every path out of every state after provisioning reaches teardown (the graph, walked)', () => {
    const teardown = new Set<string>([S.cleanUp, S.deleteInstance]);
    // States that create something to tear down, and everything reachable from them before teardown.
    const provisioning = [S.runDrill, S.restoreLatest, S.restorePointInTime, S.restoreSnapshot];
    const after = new Set<string>();
    const collect = (name: string) => {
      if (teardown.has(name) || after.has(name)) return;
      after.add(name);
      successors(definition.States[name]).forEach(collect);
    };
    provisioning.forEach(collect);
    // The walk found the whole RDS wait loop and the checks: the proof covers them too.
    expect([...after]).toEqual(expect.arrayContaining([S.waitForInstance, S.describeInstance, S.instanceReady, S.countWait, S.runChecks, S.instanceNotReady]));
    for (const state of after) {
      expect({ state, path: pathAvoiding(definition.States, state, teardown) }).toEqual({ state, path: undefined });
    }
  });

  test('a walk that ignored teardown would find the escape (the check can fail)', () => {
    // Remove the runDrill → cleanUp catch: a path must appear.
    const broken = structuredClone(definition.States);
    broken[S.runDrill].Catch = [{ ErrorEquals: ['States.ALL'], Next: S.record }];
    const escape = pathAvoiding(broken, S.runDrill, new Set([S.cleanUp, S.deleteInstance]));
    expect(escape?.slice(0, 3)).toEqual([S.runDrill, S.record, S.passed]);
  });

  test('every task after provisioning catches States.ALL (timeouts included) and has a timeout of its own', () => {
    for (const name of [S.runDrill, S.runChecks, S.describeInstance, S.restoreLatest, S.restorePointInTime, S.restoreSnapshot]) {
      const state = definition.States[name];
      expect(state.Catch?.some((c) => c.ErrorEquals.includes('States.ALL'))).toBe(true);
    }
    for (const name of [S.runDrill, S.runChecks, S.cleanUp, S.runVerify]) expect(definition.States[name].TimeoutSeconds).toBeGreaterThan(0);
    // No execution timeout: it would stop the machine before teardown.
    expect((definition as { TimeoutSeconds?: number }).TimeoutSeconds).toBeUndefined();
  });

  test('RDS: DeleteDBInstance without a final snapshot runs on success and in the Catch of every RDS step', () => {
    const del = definition.States[S.deleteInstance];
    expect(del.Resource).toMatch(/:states:::aws-sdk:rds:deleteDBInstance$/);
    expect(del.Parameters).toMatchObject({ SkipFinalSnapshot: true, 'DbInstanceIdentifier.$': '$.drill.rds.instance' });
    expect(definition.States[S.runChecks].Next).toBe(S.deleteInstance);
    for (const name of [S.restoreLatest, S.restorePointInTime, S.restoreSnapshot, S.describeInstance, S.runChecks]) {
      expect(definition.States[name].Catch).toEqual(expect.arrayContaining([expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: S.deleteInstance })]));
    }
    expect(definition.States[S.instanceNotReady].Next).toBe(S.deleteInstance);
    // The self-managed path: the cleanup task on success and in the Catch.
    expect(definition.States[S.runDrill].Next).toBe(S.cleanUp);
    expect(definition.States[S.runDrill].Catch).toEqual([expect.objectContaining({ ErrorEquals: ['States.ALL'], Next: S.cleanUp, ResultPath: '$.error' })]);
  });

  test('the worker commands come from the drill target; the checks task gets the restored endpoint', () => {
    const command = (name: string) => (definition.States[name].Parameters as { Overrides: { ContainerOverrides: Record<string, unknown>[] } }).Overrides.ContainerOverrides[0];
    expect(command(S.runDrill)).toMatchObject({ 'Command.$': '$.drill.workerCommand' });
    expect(command(S.cleanUp)).toMatchObject({ 'Command.$': '$.drill.cleanupCommand' });
    expect(String(command(S.runChecks)['Command.$'])).toContain("'--endpoint', $.endpoint.value");
  });

  test('the drill role may delete only instances it created: the name prefix, and a deny without the drill tag', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap((p) => (p as { Properties: { PolicyDocument: { Statement: Record<string, unknown>[] } } }).Properties.PolicyDocument.Statement);
    const deletes = statements.filter((s) => [s.Action].flat().includes('rds:DeleteDBInstance'));
    expect(deletes.length).toBeGreaterThan(0);
    for (const s of deletes.filter((d) => d.Effect === 'Allow')) {
      expect(JSON.stringify(s.Resource)).toContain(`:db:${DRILL_INSTANCE_PREFIX}*`);
    }
    expect(deletes).toEqual(
      expect.arrayContaining([expect.objectContaining({ Effect: 'Deny', Resource: '*', Condition: { Null: { 'rds:db-tag/tidemark:drill': 'true' } } })]),
    );
  });

  test('schedules per source and kind: defaults, and a configured cron, in the deployment time zone', () => {
    const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule')).map(
      (r) => (r as { Properties: { ScheduleExpression: string; ScheduleExpressionTimezone: string; Target: { Input?: string; Arn: unknown } } }).Properties,
    );
    const drills = schedules.filter((s) => s.Target.Input && JSON.parse(s.Target.Input).kind !== undefined).map((s) => ({ ...JSON.parse(s.Target.Input!), expression: s.ScheduleExpression, zone: s.ScheduleExpressionTimezone }));
    expect(drills).toHaveLength(6);
    expect(drills).toEqual(
      expect.arrayContaining([
        { source: 'app', kind: 'verify', expression: 'cron(0 5 * * ? *)', zone: 'Europe/Berlin' },
        { source: 'app', kind: 'restore', expression: 'cron(30 2 ? * 4 *)', zone: 'Europe/Berlin' },
        { source: 'app', kind: 'full', expression: 'cron(0 7 1 * ? *)', zone: 'Europe/Berlin' },
        expect.objectContaining({ source: 'orders', kind: 'restore' }),
      ]),
    );
    expect(DRILL_SCHEDULE_DEFAULTS.verify).toBe('0 5 * * *');
  });

  test('alarms per source: DrillFailed on the drill-record metric; RtoAtRisk only where an RTO is set', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'DrillFailed',
      Namespace: 'Tidemark',
      Dimensions: [{ Name: 'Source', Value: 'app' }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'DrillFailed', Dimensions: [{ Name: 'Source', Value: 'orders' }] });
    const rto = template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: Match.stringLikeRegexp('-RtoAtRisk$') } });
    expect(Object.keys(rto)).toHaveLength(1);
    const alarm = Object.values(rto)[0] as { Properties: { Threshold: number; Metrics: { Expression?: string; MetricStat?: { Metric: { MetricName: string; Dimensions: unknown } } }[] } };
    expect(alarm.Properties.Threshold).toBe(3600);
    expect(alarm.Properties.Metrics.find((m) => m.Expression)?.Expression).toBe('MAX([measured, predicted])');
    expect(alarm.Properties.Metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric.MetricName] : [])).sort()).toEqual(['DrillPredictedRtoSeconds', 'DrillRtoSeconds']);
  });

  test('the dashboard graphs RTO and RPO of drills per source', () => {
    const dashboards = template.findResources('AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(Object.values(dashboards)[0]);
    for (const title of ['app: drill RTO', 'app: drill RPO', 'orders: drill RTO', 'orders: drill RPO']) expect(body).toContain(title);
    expect(body).toContain('DrillRpoSeconds');
  });

  test('the drill functions know each source (engine, objectives, RDS instance) and nothing secret', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function')).map((f) => (f as { Properties: { Environment?: { Variables?: Record<string, unknown> } } }).Properties.Environment?.Variables ?? {});
    const drill = fns.find((v) => v.TIDEMARK_DRILL_SOURCES !== undefined)!;
    expect(JSON.parse(drill.TIDEMARK_DRILL_SOURCES as string)).toEqual({
      app: { engine: 'postgres', rpoSeconds: expect.any(Number), rtoSeconds: 3600 },
      orders: { engine: 'postgres', rpoSeconds: expect.any(Number), rds: { instance: 'orders', securityGroupIds: [] } },
    });
    expect(JSON.stringify(drill)).not.toMatch(/secretsmanager|password/i);
  });

  describe('teardown of a drill execution that is stopped or times out (no Catch runs then)', () => {
    // The stack above, synthesized under cdk-nag: the teardown's role, queue and function are clean too.
    const stateMachineId = () => Object.keys(template.findResources('AWS::StepFunctions::StateMachine')).find((id) => id.startsWith('DrillStateMachine'))!;

    const teardownPolicy = () => {
      const policies = template.findResources('AWS::IAM::Policy');
      const entry = Object.entries(policies).find(([id]) => id.startsWith('DrillTeardownFunctionRole'));
      expect(entry).toBeDefined();
      return (entry![1] as { Properties: { PolicyDocument: { Statement: { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown }[] } } }).Properties.PolicyDocument.Statement;
    };

    test('the lib/core names of the contract match the machine (state names, instance tag)', () => {
      expect({ target: DRILL_TARGET_STATE, recorded: DRILL_RECORDED_STATE, tag: RDS_DRILL_TAG }).toEqual({ target: S.chooseTarget, recorded: S.passed, tag: DRILL_INSTANCE_TAG });
      expect(definition.States[S.passed].Type).toBe('Choice');
    });

    test('every ECS task of the drill is started by its drill id, so teardown can find it', () => {
      const runTasks = Object.entries(definition.States).filter(([, st]) => st.Type === 'Task' && String(st.Resource).includes('ecs:runTask'));
      expect(runTasks.map(([name]) => name).sort()).toEqual([S.cleanUp, S.runChecks, S.runDrill, S.runVerify].sort());
      for (const [name, st] of runTasks) expect({ name, startedBy: st.Parameters?.['StartedBy.$'] }).toEqual({ name, startedBy: '$.drill.id' });
    });

    test('an EventBridge rule on ABORTED, TIMED_OUT and FAILED executions of the drill machine invokes the teardown function, with a dead-letter queue', () => {
      const functions = template.findResources('AWS::Lambda::Function', { Properties: { Description: Match.stringLikeRegexp('tears down a drill execution') } });
      const [functionId] = Object.keys(functions);
      expect(functionId).toBeDefined();
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.states'],
          'detail-type': ['Step Functions Execution Status Change'],
          detail: { stateMachineArn: [{ Ref: stateMachineId() }], status: ['ABORTED', 'TIMED_OUT', 'FAILED'] },
        },
        State: 'ENABLED',
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionId, 'Arn'] }, DeadLetterConfig: Match.anyValue(), RetryPolicy: Match.anyValue() })],
      });
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2, DestinationConfig: { OnFailure: Match.anyValue() } });
      const props = (functions[functionId] as { Properties: { Timeout: number; Environment: { Variables: Record<string, unknown> } } }).Properties;
      expect(props.Timeout).toBe(900);
      expect(Object.keys(props.Environment.Variables).sort()).toEqual(['TIDEMARK_DRILL_CLUSTER', 'TIDEMARK_DRILL_SOURCES', 'TIDEMARK_METRICS_NAMESPACE', 'TIDEMARK_REPOSITORY_URL']);
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: Match.stringLikeRegexp('-DrillTeardownFailed$'), AlarmDescription: Match.stringLikeRegexp('tidemark-drill-') });
    });

    test('the teardown role reads execution histories, stops tasks of the workers cluster only, deletes only tagged drill instances', () => {
      const statements = teardownPolicy();
      const find = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
      expect(JSON.stringify(find('states:GetExecutionHistory')[0].Resource)).toContain(':execution:');
      for (const action of ['ecs:ListTasks', 'ecs:StopTask']) {
        const [st] = find(action);
        expect({ action, condition: st.Condition }).toEqual({ action, condition: { ArnEquals: { 'ecs:cluster': expect.anything() } } });
        expect(JSON.stringify(st.Condition)).toContain('WorkersCluster');
      }
      const deletes = find('rds:DeleteDBInstance');
      expect(deletes.find((st) => st.Effect === 'Allow')?.Resource).toBe(`arn:aws:rds:eu-west-1:111111111111:db:${DRILL_INSTANCE_PREFIX}*`);
      expect(deletes.find((st) => st.Effect === 'Deny')).toMatchObject({ Resource: '*', Condition: { Null: { [`rds:db-tag/${DRILL_INSTANCE_TAG}`]: 'true' } } });
      expect(statements.flatMap((st) => [st.Action].flat()).filter((a) => a.startsWith('rds:')).sort()).toEqual(['rds:DeleteDBInstance', 'rds:DeleteDBInstance', 'rds:DescribeDBInstances']);
    });
  });
});

describe('a drill larger than the ephemeral storage', () => {
  test('gets an ECS-managed EBS scratch volume on the drill task only, mounted where the drill keeps its scratch; cdk-nag clean', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'tidemark-drill-synth-'));
    try {
      const app = new App({ outdir, builtinCloudFormationValidation: false, context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
      const config = { ...CONFIG, sources: { app: { ...CONFIG.sources.app, drill: { restoreSizeGiB: 500 } } } };
      const [stack] = buildTidemarkApp(app, parseConfig(JSON.stringify(config), 'big.json'));
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      app.synth();
      const template = Template.fromStack(stack);
      const states = (stateMachineDefinition(template.toJSON(), 'DrillStateMachine') as { States: Record<string, { Parameters?: Record<string, unknown> }> }).States;
      expect(states[S.runDrill].Parameters?.VolumeConfigurations).toEqual([
        expect.objectContaining({ Name: 'drill-scratch', ManagedEBSVolume: expect.objectContaining({ SizeInGiB: 500, VolumeType: 'gp3', Encrypted: true }) }),
      ]);
      expect(JSON.stringify(states[S.runDrill].Parameters)).toContain('"TIDEMARK_SPOOL","Value":"/var/lib/tidemark"');
      for (const name of [S.cleanUp, S.runChecks, S.runVerify]) expect(states[name].Parameters?.VolumeConfigurations).toBeUndefined();
      template.hasResourceProperties('AWS::ECS::TaskDefinition', {
        Volumes: Match.arrayWith([{ Name: 'drill-scratch', ConfiguredAtLaunch: true }]),
        ContainerDefinitions: Match.arrayWith([Match.objectLike({ MountPoints: [{ ContainerPath: '/var/lib/tidemark', SourceVolume: 'drill-scratch', ReadOnly: false }] })]),
      });
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });

  test('without restoreSizeGiB above the ephemeral storage there is no volume', () => {
    // The main suite's config has none: its task definition has no launch-time volume.
    const outdir = mkdtempSync(join(tmpdir(), 'tidemark-drill-synth-'));
    try {
      const app = new App({ outdir, builtinCloudFormationValidation: false, context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
      const config = { ...CONFIG, sources: { app: { ...CONFIG.sources.app, drill: { restoreSizeGiB: 20 } } } };
      const [stack] = buildTidemarkApp(app, parseConfig(JSON.stringify(config), 'small.json'));
      const defs = Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition');
      expect(JSON.stringify(defs)).not.toContain('ConfiguredAtLaunch');
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
