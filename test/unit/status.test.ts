import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeServicesCommand, ECSClient } from '@aws-sdk/client-ecs';
import { mockClient } from 'aws-sdk-client-mock';
import { main } from '../../bin/tidemark';
import { parseConfig } from '../../lib/core/config/load';
import { formatAge, formatStatus, runStatus, type StatusResult } from '../../lib/core/commands/status';
import { StackOutputNames, streamerServiceOutput } from '../../lib/core/config/stack-outputs';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { drillReportKey, DRILL_REPORT_FORMAT, type DrillReport } from '../../lib/core/drill/report';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';
import { TEST_KEY, useTempDir, writeConfig } from '../harness/tidemark';

/**
 * `tidemark status [--aws]` over a folder repository holding real committed backups and drill
 * reports; CloudFormation and ECS are mocked (no local endpoint has them).
 */
const cfn = mockClient(CloudFormationClient);
const ecs = mockClient(ECSClient);

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const STACK = `Tidemark-${ACCOUNT}-${REGION}`;
const CLUSTER = `arn:aws:ecs:${REGION}:${ACCOUNT}:cluster/Tidemark-Workers-Cluster`;
const PAYMENTS_SERVICE = `arn:aws:ecs:${REGION}:${ACCOUNT}:service/Tidemark-Workers-Cluster/stream-payments`;
const NOW = Date.now();

async function commit(repo: Repository, source: string, restorePoint: Date): Promise<string> {
  await sleep(3); // backup ids carry the start time to the millisecond
  const writer = await repo.beginBackup(source, 'postgres', 'logical');
  await writer.writeObject('dump', Readable.from([randomBytes(2048)]), { compression: false });
  return (await writer.commit({ time: restorePoint.toISOString() }, TEST_PG_LOGICAL_DETAILS)).id;
}

function drillReport(source: string, id: string, ok: boolean, extra: Partial<DrillReport> = {}): DrillReport {
  return {
    format: DRILL_REPORT_FORMAT,
    id,
    source,
    engine: 'postgres',
    method: 'logical',
    kind: 'restore',
    target: { kind: 'latest' },
    startedAt: new Date(NOW - 7200_000).toISOString(),
    finishedAt: new Date(NOW - 7000_000).toISOString(),
    ok,
    checks: [{ name: 'recorded checksums', ok, detail: ok ? '3 tables match' : 'orders: 10 rows, expected 12' }],
    cleanedUp: true,
    ...(ok ? { rtoSeconds: 94, rpoSeconds: 12 } : { error: 'check recorded checksums failed: orders: 10 rows, expected 12' }),
    ...extra,
  };
}

function outputs(values: Record<string, string>): void {
  cfn.on(DescribeStacksCommand, { StackName: STACK }).resolves({
    Stacks: [{ StackName: STACK, CreationTime: new Date(), StackStatus: 'CREATE_COMPLETE', Outputs: Object.entries(values).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })) }],
  });
}

describe('tidemark status', () => {
  const dir = useTempDir('tidemark-status-');
  let configPath: string;
  let appBackup: string;
  let vault: string;

  beforeAll(async () => {
    // GIVEN app backed up 10 minutes ago (RPO 1h) with a passing then a failing drill; payments
    // (streaming, RPO 5m) backed up 2 hours ago, drilled fine; orders never backed up.
    const repo = new Repository(new FileStore(`${dir.path}/repo`), new LocalKeyProvider(TEST_KEY, 'test key'));
    await commit(repo, 'app', new Date(NOW - 86400_000));
    appBackup = await commit(repo, 'app', new Date(NOW - 600_000));
    await commit(repo, 'payments', new Date(NOW - 7200_000));
    await repo.store.put(drillReportKey('app', '20261130T010000Z-aaaaaa'), Buffer.from(JSON.stringify(drillReport('app', '20261130T010000Z-aaaaaa', true))));
    await repo.store.put(drillReportKey('app', '20261201T010000Z-bbbbbb'), Buffer.from(JSON.stringify(drillReport('app', '20261201T010000Z-bbbbbb', false))));
    await repo.store.put(drillReportKey('payments', '20261201T020000Z-cccccc'), Buffer.from(JSON.stringify(drillReport('payments', '20261201T020000Z-cccccc', true))));
    vault = `${dir.path}/repo`;
    configPath = writeConfig(dir.path, 'tidemark.yaml', {
      repository: pathToFileURL(`${dir.path}/elsewhere`).href,
      encryption: { key: 'env:TIDEMARK_KEY' },
      aws: { account: ACCOUNT, region: REGION },
      sources: {
        app: { engine: 'postgres', url: 'postgres://backup@10.0.0.5:5432/app', rpo: '1h' },
        payments: { engine: 'postgres', url: 'postgres://backup@10.0.0.6:5432/payments', rpo: '5m', stream: { flushSeconds: 10 } },
        orders: { engine: 'postgres', url: 'postgres://backup@10.0.0.7:5432/orders', rpo: '1d' },
      },
    }).path;
  });
  beforeEach(() => {
    cfn.reset();
    ecs.reset();
  });

  test('--aws: backups and drills from the vault the stack exports, RPO age against each objective, streamer health from ECS', async () => {
    // GIVEN the stack points at the vault (not the config's repository) and the streamer is failing to start
    outputs({
      [StackOutputNames.repositoryUrl]: pathToFileURL(vault).href,
      [StackOutputNames.workersCluster]: CLUSTER,
      [streamerServiceOutput('payments')]: PAYMENTS_SERVICE,
    });
    ecs.on(DescribeServicesCommand).resolves({
      services: [
        {
          serviceArn: PAYMENTS_SERVICE,
          serviceName: 'stream-payments',
          status: 'ACTIVE',
          desiredCount: 1,
          runningCount: 0,
          pendingCount: 1,
          deployments: [{ status: 'PRIMARY', rolloutState: 'FAILED', rolloutStateReason: 'ECS deployment circuit breaker: tasks failed to start.' }],
          events: [
            { createdAt: new Date(NOW - 60_000), message: '(service stream-payments) is unable to consistently start tasks successfully.' },
            { createdAt: new Date(NOW - 600_000), message: '(service stream-payments) has started 1 tasks.' },
          ],
        },
      ],
      failures: [],
    });
    const config = parseConfig(readFileSync(configPath, 'utf8'), configPath);

    // WHEN
    const result = await runStatus(config, { aws: true, now: NOW });

    // THEN
    expect(ecs.commandCalls(DescribeServicesCommand).map((c) => c.args[0].input)).toEqual([{ cluster: CLUSTER, services: [PAYMENTS_SERVICE] }]);
    const by = Object.fromEntries(result.sources.map((s) => [s.source, s]));
    expect(by.app).toMatchObject({
      ok: false,
      stack: STACK,
      lastBackup: { id: appBackup, type: 'logical' },
      lastDrill: { id: '20261201T010000Z-bbbbbb', ok: false },
      rpo: { ageSeconds: 600, objectiveSeconds: 3600, ok: true },
      problems: ['last drill 20261201T010000Z-bbbbbb failed: check recorded checksums failed: orders: 10 rows, expected 12'],
    });
    expect(by.app.streamer).toBeUndefined();
    expect(by.payments).toMatchObject({
      ok: false,
      lastDrill: { ok: true, rtoSeconds: 94 },
      rpo: { ageSeconds: 7200, objectiveSeconds: 300, ok: false },
      streamer: { service: 'stream-payments', running: 0, desired: 1, rollout: 'FAILED', ok: false },
      problems: [
        'newest restorable point is 2h00m old, over the RPO of 5m',
        'streamer stream-payments: ACTIVE, 0 of 1 running, 1 pending, rollout FAILED (ECS deployment circuit breaker: tasks failed to start.); last event: (service stream-payments) is unable to consistently start tasks successfully.',
      ],
    });
    expect(by.orders).toMatchObject({ ok: false, lastBackup: null, lastDrill: null, rpo: { newestPoint: null, ageSeconds: null, ok: false } });
    expect(result.ok).toBe(false);
  });

  test('--aws --json and the table through the CLI: exit 1 when a source needs attention', async () => {
    // GIVEN an older stack: no repository output (the config's repository is read), a healthy streamer
    outputs({ [StackOutputNames.workersCluster]: CLUSTER, [streamerServiceOutput('payments')]: PAYMENTS_SERVICE });
    ecs.on(DescribeServicesCommand).resolves({
      services: [{ serviceArn: PAYMENTS_SERVICE, serviceName: 'stream-payments', status: 'ACTIVE', desiredCount: 1, runningCount: 1, pendingCount: 0, deployments: [{ status: 'PRIMARY', rolloutState: 'COMPLETED' }] }],
    });
    const run = async (args: string[]) => {
      let stdout = '';
      const out = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true));
      try {
        return { code: await main(['node', 'tidemark', '--config', configPath, ...args]), stdout };
      } finally {
        out.mockRestore();
        process.exitCode = undefined;
      }
    };

    // WHEN only payments is asked for: the config's repository ('elsewhere') holds nothing
    const json = await run(['--json', 'status', 'payments', '--aws']);

    // THEN
    expect(json.code).toBe(1);
    const parsed = JSON.parse(json.stdout) as StatusResult;
    expect(parsed.sources.map((s) => s.source)).toEqual(['payments']);
    expect(parsed.sources[0]).toMatchObject({ lastBackup: null, streamer: { ok: true, running: 1 }, problems: ['no committed backup: nothing can be restored'] });

    const table = await run(['status', 'payments', '--aws']);
    expect(table.stdout.split('\n')[0]).toMatch(/^STATE +SOURCE +LAST BACKUP +LAST DRILL +RPO AGE \/ OBJECTIVE +STREAMER$/);
    expect(table.stdout).toMatch(/^ATTENTION +payments +none +never +- \/ 5m ! +1\/1 running$/m);
    expect(table.stdout).toContain('! payments: no committed backup: nothing can be restored');
  });

  test('without --aws: the config\'s repository, no stack, no streamer; the table names every problem', async () => {
    const config = parseConfig(readFileSync(configPath, 'utf8').replace(/elsewhere/, 'repo'), configPath);

    const result = await runStatus(config, { now: NOW });

    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(result.sources.map((s) => [s.source, s.ok, s.stack, s.streamer])).toEqual([
      ['app', false, undefined, undefined],
      ['payments', false, undefined, undefined],
      ['orders', false, undefined, undefined],
    ]);
    const table = formatStatus(result);
    expect(table).toMatch(/^ATTENTION +app +logical \d+s ago, 2\.\d KiB +FAILED 1h56m ago +10m00s \/ 1h +-$/m);
    expect(table).toMatch(/^ATTENTION +payments +logical \d+s ago, .* +ok 1h56m ago, RTO 1m34s +2h00m \/ 5m ! +-$/m);
    expect(table).toMatch(/^ATTENTION +orders +none +never +- \/ 1d ! +-$/m);
    expect(table).toContain('! orders: no committed backup: nothing can be restored');
  });

  test('fails with one clear line when the stack is not deployed', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error(`Stack with id ${STACK} does not exist`), { name: 'ValidationError' }));
    let stderr = '';
    const err = jest.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true));
    try {
      expect(await main(['node', 'tidemark', '--config', configPath, 'status', '--aws'])).toBe(1);
    } finally {
      err.mockRestore();
    }
    expect(stderr).toBe(`tidemark: stack ${STACK} in ${REGION} does not exist: deploy it (npx cdk deploy) or name the right one with --stack\n`);
  });

  test('--aws with two stacks: one unreadable stack and a failing ECS call are problems of their sources, the rest is still reported', async () => {
    // GIVEN orders deployed to a second account whose stack the caller may not read, and ECS refusing DescribeServices
    const config = parseConfig(
      readFileSync(configPath, 'utf8').replace("rpo: 1d", "rpo: 1d\n    aws: { account: '222222222222' }"),
      configPath,
    );
    outputs({ [StackOutputNames.repositoryUrl]: pathToFileURL(vault).href, [StackOutputNames.workersCluster]: CLUSTER, [streamerServiceOutput('payments')]: PAYMENTS_SERVICE });
    cfn.on(DescribeStacksCommand, { StackName: `Tidemark-222222222222-${REGION}` }).rejects(
      Object.assign(new Error('User: arn:aws:iam::111111111111:user/ops is not authorized to perform: cloudformation:DescribeStacks'), { name: 'AccessDenied' }),
    );
    ecs.on(DescribeServicesCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }));

    // WHEN
    const result = await runStatus(config, { aws: true, now: NOW });

    // THEN
    const by = Object.fromEntries(result.sources.map((s) => [s.source, s]));
    expect(by.app).toMatchObject({ lastBackup: { id: appBackup }, stack: STACK });
    expect(by.payments.problems).toContainEqual(expect.stringMatching(/^streamer: describing the streamer services in Tidemark-Workers-Cluster: ThrottlingException: Rate exceeded$/));
    expect(by.orders).toMatchObject({
      ok: false,
      stack: `Tidemark-222222222222-${REGION}`,
      lastBackup: null,
      problems: [`reading the outputs of stack Tidemark-222222222222-${REGION} in ${REGION}: AccessDenied: User: arn:aws:iam::111111111111:user/ops is not authorized to perform: cloudformation:DescribeStacks (the caller needs that permission on the deployed stack)`],
    });
  });

  test('formatAge', () => {
    expect([0, 59, 60, 3599, 3600, 3720, 86399, 90000].map(formatAge)).toEqual(['0s', '59s', '1m00s', '59m59s', '1h00m', '1h02m', '23h59m', '1d01h']);
  });
});
