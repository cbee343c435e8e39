import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { planDeployments, workerConfig, type SourceDeployment } from '../../lib/core/config/deployment';
import { TidemarkConfigSchema, type TidemarkConfigInput } from '../../lib/core/config/schema';
import { snapshotIdentifier } from '../../lib/core/engines/rds/snapshot-identifier';
import { BackupWorkers, SNAPSHOT_NAMES, type BackupWorkersProps } from '../../lib/infra/backup-workers';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const CONTEXT = {
  'aws:cdk:bundling-stacks': [],
  'availability-zones:account=111111111111:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
};
const APP_SECRET = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:tidemark/app-AbC123';
const ORDERS_SECRET = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:rds!db-0f1e2d-XyZ789';
const COPY_KEY = 'arn:aws:kms:eu-central-1:111111111111:key/0b5e4c1a-1111-2222-3333-444455556666';
const VAULT = { bucketName: 'tidemark-vault-111111111111', prefix: 'tidemark', keyArn: 'arn:aws:kms:eu-west-1:111111111111:key/vault' };

/** A fleet with one of everything: a streamed source, RDS instance and cluster, MySQL, shared security groups. */
const FLEET: TidemarkConfigInput = {
  repository: 'file:///unused-on-aws',
  encryption: { key: 'env:TIDEMARK_KEY' },
  aws: ENV,
  sources: {
    app: { engine: 'postgres', url: 'postgres://backup@10.0.1.5:5432/app', password: `secret:${APP_SECRET}`, stream: {}, securityGroupId: 'sg-0a1b2c3d' },
    orders: {
      engine: 'postgres',
      url: 'postgres://backup@orders.c1x2y3.eu-west-1.rds.amazonaws.com:5433/orders',
      password: `secret:${ORDERS_SECRET}`,
      rds: { instance: 'orders-prod', copyToRegion: 'eu-central-1', copyKmsKeyArn: COPY_KEY },
      securityGroupId: 'sg-0d0d0d0d',
    },
    ledger: { engine: 'postgres', url: 'postgres://backup@ledger.cluster-c1x2y3.eu-west-1.rds.amazonaws.com/ledger', password: 'secret:tidemark/ledger', rds: { cluster: 'ledger' } },
    shop: { engine: 'mysql', url: 'mysql://backup@10.0.2.7:3306', password: 'secret:tidemark/shop', securityGroupId: 'sg-0a1b2c3d' },
  },
};

/** Only a self-managed source: no RDS, no stream. */
const PLAIN: TidemarkConfigInput = {
  repository: 'file:///unused-on-aws',
  encryption: { key: 'env:TIDEMARK_KEY' },
  aws: ENV,
  sources: { app: { engine: 'postgres', url: 'postgres://backup@10.0.1.5:5432/app', password: `secret:${APP_SECRET}` } },
};

function plan(input: TidemarkConfigInput): { sources: readonly SourceDeployment[]; workerConfigJson: string } {
  const config = TidemarkConfigSchema.parse(input);
  const [deployment] = planDeployments(config);
  return { sources: deployment.sources, workerConfigJson: JSON.stringify(workerConfig(config, deployment, VAULT)) };
}

function synth(input: TidemarkConfigInput, props: Partial<BackupWorkersProps> = {}) {
  const app = new App({ builtinCloudFormationValidation: false, context: CONTEXT });
  const stack = new Stack(app, 'Workers', { env: ENV });
  const workers = new BackupWorkers(stack, 'Workers', { ...plan(input), ...props });
  const template = Template.fromStack(stack);
  return { app, stack, workers, template };
}

type ContainerDefinition = { Name: string; Command?: string[]; Environment?: { Name: string; Value: unknown }[]; Secrets?: { Name: string; ValueFrom: unknown }[] };

function containers(template: Template): ContainerDefinition[] {
  return Object.values(template.findResources('AWS::ECS::TaskDefinition')).flatMap((r) => r.Properties.ContainerDefinitions as ContainerDefinition[]);
}

function statements(template: Template): { Action: string | string[]; Resource: unknown; Condition?: unknown }[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

const actionsOf = (s: { Action: string | string[] }) => [s.Action].flat();
const resourcesOf = (s: { Resource: unknown }) => [s.Resource].flat().map((r) => JSON.stringify(r));

describe('BackupWorkers', () => {
  let fleet: ReturnType<typeof synth>;
  beforeAll(() => {
    fleet = synth(FLEET);
  });

  it('hands every password over as an ECS secret, never as a plain environment variable', () => {
    const all = containers(fleet.template);
    expect(all).toHaveLength(2); // the backup task and app's streamer
    for (const container of all) {
      const secrets = Object.fromEntries((container.Secrets ?? []).map((s) => [s.Name, s.ValueFrom]));
      expect(secrets.TIDEMARK_SECRET_APP).toBe(APP_SECRET);
      // RDS-managed secrets are JSON: ECS extracts the password field.
      expect(secrets.TIDEMARK_SECRET_ORDERS).toBe(`${ORDERS_SECRET}:password::`);
      expect(JSON.stringify(secrets.TIDEMARK_SECRET_LEDGER)).toMatch(/:secret:tidemark\/ledger:password::/);
      expect(JSON.stringify(secrets.TIDEMARK_SECRET_SHOP)).toMatch(/:secret:tidemark\/shop"\]\]\}$/);

      expect(container.Environment!.map((e) => e.Name)).toEqual(['TIDEMARK_CONFIG_JSON']);
      const environment = JSON.stringify(container.Environment);
      for (const leak of [APP_SECRET, ORDERS_SECRET, 'tidemark/ledger', 'tidemark/shop', 'secret:']) expect(environment).not.toContain(leak);
    }
  });

  it('passes the worker config as TIDEMARK_CONFIG_JSON, with env: references to the secrets', () => {
    const value = containers(fleet.template)[0].Environment!.find((e) => e.Name === 'TIDEMARK_CONFIG_JSON')!.Value as string;
    const config = JSON.parse(value);
    expect(config.repository.url).toBe('s3://tidemark-vault-111111111111/tidemark');
    expect(config.encryption.key).toBe(`kms:${VAULT.keyArn}`);
    expect(config.sources.app.password).toBe('env:TIDEMARK_SECRET_APP');
    expect(config.sources.orders.password).toBe('env:TIDEMARK_SECRET_ORDERS');
    expect(value).not.toContain('secret:');
  });

  it('runs the backup task on Fargate x86_64 with a small disk and no default command', () => {
    fleet.template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      Cpu: '1024',
      Memory: '2048',
      EphemeralStorage: { SizeInGiB: 21 },
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { OperatingSystemFamily: 'LINUX', CpuArchitecture: 'X86_64' },
      ContainerDefinitions: [Match.objectLike({ Name: 'worker', Command: Match.absent(), Essential: true })],
    });
    expect(fleet.workers.container.containerName).toBe('worker');
  });

  it('runs a streamer service exactly for the sources with stream, as `stream <source>`', () => {
    expect([...fleet.workers.streamers.keys()]).toEqual(['app']);
    fleet.template.resourceCountIs('AWS::ECS::Service', 1);
    fleet.template.hasResourceProperties('AWS::ECS::Service', {
      ServiceName: 'stream-app',
      LaunchType: 'FARGATE',
      DesiredCount: 1,
      DeploymentConfiguration: Match.objectLike({
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 0,
        MaximumPercent: 100,
      }),
      LoadBalancers: Match.absent(),
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
    });
    const commands = containers(fleet.template).map((c) => c.Command);
    expect(commands).toContainEqual(['stream', 'app']);
    // One task role for backups and streamers: the caller's storage grants cover both.
    const roles = Object.values(fleet.template.findResources('AWS::ECS::TaskDefinition')).map((t) => JSON.stringify(t.Properties.TaskRoleArn));
    expect(new Set(roles).size).toBe(1);
  });

  it('opens each database security group to the workers on the source port, once per group and port', () => {
    const workerGroup = { 'Fn::GetAtt': [fleet.stack.getLogicalId(fleet.workers.securityGroup.node.defaultChild as ec2.CfnSecurityGroup), 'GroupId'] };
    const rules = Object.values(fleet.template.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties);
    expect(rules.map((r) => `${r.GroupId}:${r.FromPort}-${r.ToPort}`).sort()).toEqual(['sg-0a1b2c3d:3306-3306', 'sg-0a1b2c3d:5432-5432', 'sg-0d0d0d0d:5433-5433']);
    for (const rule of rules) expect(rule).toMatchObject({ IpProtocol: 'tcp', SourceSecurityGroupId: workerGroup });
  });

  it('lets workers out only on HTTPS and the database ports, and nothing in', () => {
    const group = fleet.template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: 'Tidemark backup workers' } });
    const props = Object.values(group)[0].Properties;
    expect(props.SecurityGroupIngress).toBeUndefined();
    const egress = (props.SecurityGroupEgress as { CidrIp: string; FromPort: number }[]).map((e) => `${e.CidrIp}:${e.FromPort}`).sort();
    expect(egress).toEqual(['0.0.0.0/0:443', '0.0.0.0/0:5432', '0.0.0.0/0:5433', '10.0.1.5/32:5432', '10.0.2.7/32:3306']);
  });

  it('grants RDS snapshot actions on the named instance or cluster and this account’s snapshots only', () => {
    const rds = statements(fleet.template).filter((s) => actionsOf(s).some((a) => a.startsWith('rds:')));
    expect(rds.length).toBeGreaterThan(0);
    for (const s of rds) {
      for (const r of resourcesOf(s)) {
        expect(r).not.toBe('"*"');
        expect(r).toMatch(/:rds:(eu-west-1|eu-central-1):111111111111:(db:orders-prod|cluster:ledger|snapshot:tidemark-\*|cluster-snapshot:tidemark-\*)"/);
      }
    }
    const granted = (action: string) => rds.filter((s) => actionsOf(s).includes(action)).flatMap(resourcesOf).join(' ');
    expect(granted('rds:CreateDBSnapshot')).toMatch(/db:orders-prod.*snapshot:tidemark-\*/);
    expect(granted('rds:CreateDBSnapshot')).not.toContain('ledger');
    expect(granted('rds:CreateDBClusterSnapshot')).toContain('cluster:ledger');
    expect(granted('rds:CopyDBSnapshot')).toContain(':rds:eu-central-1:111111111111:snapshot:tidemark-*');
    expect(granted('rds:CopyDBClusterSnapshot')).toBe(''); // ledger copies nowhere
    expect(granted('rds:DescribeDBSnapshots')).toContain('snapshot:tidemark-*');
    expect(granted('rds:AddTagsToResource')).not.toMatch(/db:|cluster:/);
    // The pattern follows the worker's naming: every snapshot identifier it makes fits.
    const pattern = new RegExp(`^${SNAPSHOT_NAMES.replace('*', '.*')}$`);
    for (const source of ['orders', 'App_1.eu', 'x'.repeat(80)]) expect(snapshotIdentifier(source, '20261124T085857.230Z-977aaf')).toMatch(pattern);

    const kms = statements(fleet.template).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kms.flatMap(resourcesOf).every((r) => r === JSON.stringify(COPY_KEY))).toBe(true);
    expect(kms.find((s) => actionsOf(s).includes('kms:CreateGrant'))!.Condition).toEqual({ Bool: { 'kms:GrantIsForAWSResource': 'true' } });
  });

  it('grants no RDS permission when no source is on RDS', () => {
    const { template } = synth(PLAIN);
    expect(statements(template).flatMap(actionsOf).filter((a) => a.startsWith('rds:') || a.startsWith('kms:'))).toEqual([]);
    template.resourceCountIs('AWS::ECS::Service', 0);
  });

  it('turns Container Insights on and keeps logs with a retention', () => {
    fleet.template.hasResourceProperties('AWS::ECS::Cluster', { ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }] });
    const retention = Object.values(fleet.template.findResources('AWS::Logs::LogGroup')).map((g) => g.Properties.RetentionInDays);
    expect(retention).toEqual([90, 90]); // worker logs and flow logs
    for (const c of containers(fleet.template)) {
      expect(c).toMatchObject({ LogConfiguration: { LogDriver: 'awslogs', Options: expect.objectContaining({ 'awslogs-group': expect.anything() }) } });
    }
  });

  it('builds a VPC with private subnets, one NAT gateway, an S3 gateway endpoint and flow logs', () => {
    fleet.template.resourceCountIs('AWS::EC2::VPC', 1);
    fleet.template.resourceCountIs('AWS::EC2::NatGateway', 1);
    fleet.template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway', ServiceName: Match.objectLike({}) });
    fleet.template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', ResourceType: 'VPC' });
    const subnets = fleet.stack.resolve(fleet.workers.vpc.selectSubnets(fleet.workers.subnets).subnetIds);
    expect(subnets).toHaveLength(2);
    expect(JSON.stringify(subnets)).toMatch(/PrivateSubnet/);
  });

  it('uses a given VPC as it is', () => {
    const app = new App({ builtinCloudFormationValidation: false, context: CONTEXT });
    const stack = new Stack(app, 'Existing', { env: ENV });
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'] });
    new BackupWorkers(stack, 'Workers', { ...plan(PLAIN), vpc, image: ecs.ContainerImage.fromRegistry('example.org/worker:1') });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 0);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0123456789abcdef0' });
  });

  it('passes cdk-nag AwsSolutions, with every deliberate finding acknowledged for a stated reason', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(fleet.stack);
    expect(report.violations.map((v) => `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);

    const acknowledged = fleet.stack.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY))
      .flatMap((m) => Object.entries(m.data as Record<string, unknown>))
      .filter(([id]) => id.includes('AwsSolutions'))
      .map(([id, reason]) => [id.replace(/^annotation::/i, ''), JSON.stringify(reason)]);
    expect(acknowledged.map(([id]) => id).sort()).toEqual([
      'AwsSolutions-ECS2', // the backup task
      'AwsSolutions-ECS2', // app's streamer
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:rds:eu-central-1:111111111111:snapshot:tidemark-*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:rds:eu-west-1:111111111111:cluster-snapshot:tidemark-*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:rds:eu-west-1:111111111111:snapshot:tidemark-*]',
    ]);
    for (const [id, reason] of acknowledged) if (id === 'AwsSolutions-ECS2') expect(reason).toMatch(/carries no secret/);
  });

  it('builds the image from the repository root with only what the worker needs in the context', () => {
    const assembly = fleet.app.synth();
    const manifest = JSON.parse(readFileSync(join(assembly.directory, 'Workers.assets.json'), 'utf8'));
    const images = Object.values(manifest.dockerImages) as { source: { directory: string; dockerFile: string; platform: string } }[];
    expect(images).toHaveLength(1);
    const { source } = images[0];
    expect(source).toMatchObject({ dockerFile: 'containers/worker/Dockerfile', platform: 'linux/amd64' });
    const context = join(assembly.directory, source.directory);
    expect(readdirSync(context).sort()).toEqual(['.dockerignore', 'containers', 'lib', 'package-lock.json', 'package.json', 'tsconfig.json']);
    expect(readdirSync(join(context, 'lib'))).toEqual(['core']);
    expect(readdirSync(join(context, 'containers'))).toEqual(['worker']);
    expect(readdirSync(join(context, 'containers/worker')).sort()).toEqual(['Dockerfile', 'drill-jobs.ts', 'main.ts']);
  });

  describe('fails when', () => {
    const props = () => plan(FLEET);
    const build = (override: Partial<BackupWorkersProps>) => () =>
      new BackupWorkers(new Stack(new App({ builtinCloudFormationValidation: false, context: CONTEXT }), 'S', { env: ENV }), 'W', { ...props(), ...override });

    it('the worker config refers to Secrets Manager itself', () => {
      const json = props().workerConfigJson.replace('env:TIDEMARK_SECRET_APP', `secret:${APP_SECRET}`);
      expect(build({ workerConfigJson: json })).toThrow(/sources\.app\.password: secret: references cannot be resolved in the worker/);
    });

    it('the worker config refers to an environment variable ECS does not set', () => {
      const json = props().workerConfigJson.replace('env:TIDEMARK_SECRET_APP', 'env:APP_DB_PASSWORD');
      expect(build({ workerConfigJson: json })).toThrow(/sources\.app\.password: env:APP_DB_PASSWORD is not one of the worker's secrets/);
    });

    it('the worker config is not valid JSON, or not a valid config', () => {
      expect(build({ workerConfigJson: '{"repository":' })).toThrow('BackupWorkers: workerConfigJson is not valid JSON');
      expect(build({ workerConfigJson: '{"repository":"ftp://x"}' })).toThrow(/workerConfigJson: repository: /);
    });

    it('a source is missing from the worker config', () => {
      const json = JSON.parse(props().workerConfigJson);
      delete json.sources.shop;
      expect(build({ workerConfigJson: JSON.stringify(json) })).toThrow("source 'shop' is missing from workerConfigJson");
    });

    it('two streamed sources would get the same service name', () => {
      const { sources, workerConfigJson } = props();
      const twins = [...sources, { ...sources[0], name: 'app.' }, { ...sources[0], name: 'app-' }];
      const json = JSON.parse(workerConfigJson);
      json.sources['app.'] = json.sources['app-'] = json.sources.app;
      expect(build({ sources: twins, workerConfigJson: JSON.stringify(json) })).toThrow(/'app\.' and 'app-' would share the streamer service name 'stream-app-'/);
    });

    it('a VPC is given together with settings for a new one', () => {
      const stack = new Stack(new App({ builtinCloudFormationValidation: false, context: CONTEXT }), 'S', { env: ENV });
      const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a'], privateSubnetIds: ['subnet-0123456789abcdef0'] });
      expect(() => new BackupWorkers(stack, 'W', { ...props(), vpc, vpcCidr: '10.1.0.0/16' })).toThrow(/cannot be combined with vpc/);
    });
  });
});
