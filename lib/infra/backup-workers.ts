import { ArnFormat, IgnoreMode, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { nagReference } from './nag-finding';
import { projectRoot } from './project-root';
import type { SourceDeployment, WorkerSecret } from '../core/config/deployment';
import { TidemarkConfigSchema } from '../core/config/schema';

export interface BackupWorkersProps {
  /** The sources this stack backs up (`planDeployments(config)[i].sources`). */
  readonly sources: readonly SourceDeployment[];
  /**
   * The worker config as JSON (`workerConfig()`), given to every container as TIDEMARK_CONFIG_JSON.
   * It must hold no secret: passwords are `env:` references to `secrets`. Checked against the
   * config schema at synth unless it is a single unresolved token.
   */
  readonly workerConfigJson: string;
  /**
   * Secrets ECS reads from Secrets Manager and hands the container as environment variables.
   * @default - the `secret` of every source
   */
  readonly secrets?: readonly WorkerSecret[];
  /**
   * The VPC the workers run in; it needs a route to S3, ECR, CloudWatch Logs, Secrets Manager, KMS
   * and the databases.
   * @default - a new VPC from `vpcCidr` and `maxAzs`: public subnets with one NAT gateway, private
   * subnets for the workers, an S3 gateway endpoint (backup traffic skips the NAT) and flow logs
   */
  readonly vpc?: ec2.IVpc;
  /** CIDR of the new VPC; only without `vpc`. @default '10.90.0.0/16' */
  readonly vpcCidr?: string;
  /** Availability zones of the new VPC; only without `vpc`. @default 2 */
  readonly maxAzs?: number;
  /** Where the tasks run. @default - the private subnets with egress */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Backup task CPU units. @default 1024 */
  readonly cpu?: number;
  /** Backup task memory. @default 2048 */
  readonly memoryMiB?: number;
  /** Backup task disk: the worker streams, so it needs little. @default 21 */
  readonly ephemeralStorageGiB?: number;
  /** CPU units of each streamer task. @default 512 */
  readonly streamerCpu?: number;
  /** Memory of each streamer task. @default 1024 */
  readonly streamerMemoryMiB?: number;
  /**
   * The worker image.
   * @default - built from containers/worker/Dockerfile with the repository root as context
   */
  readonly image?: ecs.ContainerImage;
  /** How long worker logs (and the new VPC's flow logs) are kept. @default THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
}

export const WORKER_DOCKERFILE = 'containers/worker/Dockerfile';

/** The RDS snapshots the worker creates and copies (their identifiers all start `tidemark-`). */
export const SNAPSHOT_NAMES = 'tidemark-*';

/** ECS service name of a source's streamer: stable, so alarms and operators can name it. */
export function streamerServiceName(source: string): string {
  return `stream-${source.replace(/[^A-Za-z0-9_-]/g, '-')}`;
}

/**
 * The repository root, found from this file so it works from lib/infra (ts) and from a compiled
 * dist/lib/infra (js) alike: the nearest folder above holding the worker's Dockerfile.
 */
export function workerBuildContext(from: string = __dirname): string {
  return projectRoot(WORKER_DOCKERFILE, 'BackupWorkers', from);
}

/**
 * The Fargate side of Tidemark: a cluster, the backup task definition the state machine runs
 * (`backup <source> --type <type>`), and one always-on streamer service per source with `stream`.
 * Storage grants are the caller's (`vault.grantWrite(workers.taskDefinition.taskRole)`); RDS
 * snapshot permissions are granted here because only the sources say which instances.
 */
export class BackupWorkers extends Construct {
  readonly vpc: ec2.IVpc;
  /** Where tasks run; the state machine's RunTask uses the same. */
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.SecurityGroup;
  readonly cluster: ecs.Cluster;
  readonly logGroup: logs.LogGroup;
  /** The backup task; its task role is shared by the streamers, so one grant covers both. */
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  /** Streamer services by source name. */
  readonly streamers: ReadonlyMap<string, ecs.FargateService>;

  private readonly image: ecs.ContainerImage;
  private readonly environment: Record<string, string>;
  private readonly secrets: Record<string, ecs.Secret>;
  private readonly taskRole: iam.Role;
  private readonly executionRole: iam.Role;

  constructor(scope: Construct, id: string, props: BackupWorkersProps) {
    super(scope, id);
    const sources = props.sources;
    const secrets = props.secrets ?? sources.flatMap((s) => (s.secret ? [s.secret] : []));
    checkSources(sources);
    checkSecrets(secrets);
    checkWorkerConfig(props.workerConfigJson, sources, new Set(secrets.map((s) => s.env)));
    if (props.vpc && (props.vpcCidr !== undefined || props.maxAzs !== undefined)) {
      throw new Error('BackupWorkers: vpcCidr and maxAzs describe a new VPC; they cannot be combined with vpc');
    }
    const retention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;

    this.vpc = props.vpc ?? this.newVpc(props.vpcCidr ?? '10.90.0.0/16', props.maxAzs ?? 2, retention);
    this.subnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    this.securityGroup = this.workerSecurityGroup(sources);
    this.allowFromWorkers(sources);

    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc: this.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    this.logGroup = new logs.LogGroup(this, 'Logs', { retention });
    this.image =
      props.image ??
      ecs.ContainerImage.fromAsset(workerBuildContext(), {
        file: WORKER_DOCKERFILE,
        platform: Platform.LINUX_AMD64,
        ignoreMode: IgnoreMode.DOCKER,
        // /.dockerignore allow-lists what the build needs; these repeat the heaviest exclusions in
        // case a checkout lacks it.
        exclude: ['.git', 'node_modules', 'cdk.out', 'dist'],
      });
    this.environment = { TIDEMARK_CONFIG_JSON: props.workerConfigJson };
    this.secrets = Object.fromEntries(secrets.map((s) => [s.env, ecs.Secret.fromSecretsManager(this.importSecret(s), s.field)]));
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Tidemark backup workers and streamers',
    });
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Tidemark workers: image pull, logs and secrets at task start',
    });

    this.taskDefinition = this.newTaskDefinition('TaskDefinition', props.cpu ?? 1024, props.memoryMiB ?? 2048, props.ephemeralStorageGiB ?? 21);
    // No command: the state machine's RunTask passes `backup <source> --type <type>`.
    this.container = this.addWorkerContainer(this.taskDefinition, 'backup');

    const streamers = new Map<string, ecs.FargateService>();
    for (const source of sources.filter((s) => s.stream)) {
      const taskDefinition = this.newTaskDefinition(`StreamerTask-${source.name}`, props.streamerCpu ?? 512, props.streamerMemoryMiB ?? 1024);
      this.addWorkerContainer(taskDefinition, `stream-${source.name}`, ['stream', source.name]);
      streamers.set(
        source.name,
        new ecs.FargateService(this, `Streamer-${source.name}`, {
          cluster: this.cluster,
          taskDefinition,
          serviceName: streamerServiceName(source.name),
          desiredCount: 1,
          // Two streamers of one source would fight over its replication slot (or double-store its
          // binlog): a deployment stops the old task before it starts the new one.
          minHealthyPercent: 0,
          maxHealthyPercent: 100,
          circuitBreaker: { enable: true, rollback: true },
          vpcSubnets: this.subnets,
          securityGroups: [this.securityGroup],
          assignPublicIp: false,
          propagateTags: ecs.PropagatedTagSource.SERVICE,
        }),
      );
    }
    this.streamers = streamers;

    const snapshotArns = sources.flatMap((s) => (s.rds ? this.grantRdsSnapshots(s.rds) : []));
    this.acknowledgeJustifiedFindings(snapshotArns);
  }

  private newVpc(cidr: string, maxAzs: number, retention: logs.RetentionDays): ec2.Vpc {
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention });
    // Default subnets: public (holding the NAT) and private with egress (the workers), per zone.
    return new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cidr),
      maxAzs,
      natGateways: 1,
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL } },
    });
  }

  /**
   * No inbound rules (nothing calls a worker); outbound only HTTPS for the AWS APIs and each
   * database's port — to its address when the URL names an IPv4 address, else anywhere (a DNS
   * name's addresses can change, e.g. on an RDS failover).
   */
  private workerSecurityGroup(sources: readonly SourceDeployment[]): ec2.SecurityGroup {
    const group = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: this.vpc,
      description: 'Tidemark backup workers',
      allowAllOutbound: false,
    });
    group.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs: S3, ECR, CloudWatch Logs, Secrets Manager, KMS, RDS');
    for (const source of sources) {
      const peer = /^\d{1,3}(\.\d{1,3}){3}$/.test(source.host) ? ec2.Peer.ipv4(`${source.host}/32`) : ec2.Peer.anyIpv4();
      group.addEgressRule(peer, ec2.Port.tcp(source.port), `database of source ${source.name}`);
    }
    return group;
  }

  /** An ingress rule on each database's own security group, from the workers, on its port. */
  private allowFromWorkers(sources: readonly SourceDeployment[]): void {
    const groups = new Map<string, ec2.ISecurityGroup>();
    for (const source of sources) {
      const id = source.securityGroupId;
      if (!id) continue;
      const group = groups.get(id) ?? ec2.SecurityGroup.fromSecurityGroupId(this, `Database-${id}`, id, { mutable: true });
      groups.set(id, group);
      // Sources sharing a group and port share one rule (CDK dedupes by peer and port).
      group.addIngressRule(this.securityGroup, ec2.Port.tcp(source.port), 'Tidemark backup workers');
    }
  }

  private importSecret(secret: WorkerSecret): secretsmanager.ISecret {
    const id = `Secret-${secret.env}`;
    if (!secret.secretId.startsWith('arn:')) return secretsmanager.Secret.fromSecretNameV2(this, id, secret.secretId);
    // A complete ARN ends in the 6-character suffix Secrets Manager appends to the name.
    return /:secret:.+-[A-Za-z0-9]{6}$/.test(secret.secretId)
      ? secretsmanager.Secret.fromSecretCompleteArn(this, id, secret.secretId)
      : secretsmanager.Secret.fromSecretPartialArn(this, id, secret.secretId);
  }

  private newTaskDefinition(id: string, cpu: number, memoryLimitMiB: number, ephemeralStorageGiB?: number): ecs.FargateTaskDefinition {
    return new ecs.FargateTaskDefinition(this, id, {
      cpu,
      memoryLimitMiB,
      ephemeralStorageGiB,
      runtimePlatform: { operatingSystemFamily: ecs.OperatingSystemFamily.LINUX, cpuArchitecture: ecs.CpuArchitecture.X86_64 },
      taskRole: this.taskRole,
      executionRole: this.executionRole,
    });
  }

  private addWorkerContainer(taskDefinition: ecs.FargateTaskDefinition, streamPrefix: string, command?: string[]): ecs.ContainerDefinition {
    return taskDefinition.addContainer('worker', {
      image: this.image,
      command,
      essential: true,
      environment: this.environment,
      secrets: this.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix }),
    });
  }

  /**
   * The worker takes RDS snapshots itself (and copies them to another region), so its role may do
   * exactly that on this instance or cluster and on snapshots of this account.
   */
  private grantRdsSnapshots(rds: NonNullable<SourceDeployment['rds']>): string[] {
    const stack = Stack.of(this);
    const arn = (resource: string, resourceName: string, region?: string) =>
      stack.formatArn({ service: 'rds', resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME, ...(region ? { region } : {}) });
    const cluster = rds.cluster !== undefined;
    const database = cluster ? arn('cluster', rds.cluster!) : arn('db', rds.instance!);
    const snapshotType = cluster ? 'cluster-snapshot' : 'snapshot';
    // The worker names snapshots `tidemark-<source>-<time>` (lib/core/engines/rds/snapshot-identifier.ts),
    // in the database's region and, for copies, under the same name in copyToRegion.
    const snapshots = arn(snapshotType, SNAPSHOT_NAMES);
    const describe = cluster ? 'rds:DescribeDBClusterSnapshots' : 'rds:DescribeDBSnapshots';
    const grant = (actions: string[], resources: string[], conditions?: Record<string, Record<string, string>>) =>
      this.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources, conditions }));

    grant([cluster ? 'rds:CreateDBClusterSnapshot' : 'rds:CreateDBSnapshot'], [database, snapshots]);
    // Describe takes resource-level permissions (the snapshot, optionally the database): no `*`.
    grant([describe], [database, snapshots]);
    grant(['rds:AddTagsToResource'], [snapshots]);
    const copies = rds.copyToRegion ? arn(snapshotType, SNAPSHOT_NAMES, rds.copyToRegion) : undefined;
    if (copies) grant([cluster ? 'rds:CopyDBClusterSnapshot' : 'rds:CopyDBSnapshot', 'rds:AddTagsToResource', describe], [snapshots, copies]);
    if (rds.copyKmsKeyArn) {
      grant(['kms:DescribeKey'], [rds.copyKmsKeyArn]);
      // Only RDS, acting for the worker, may hold the grant (to encrypt the copy).
      grant(['kms:CreateGrant'], [rds.copyKmsKeyArn], { Bool: { 'kms:GrantIsForAWSResource': 'true' } });
    }
    return copies ? [snapshots, copies] : [snapshots];
  }

  /** cdk-nag (AwsSolutions) findings that are deliberate here, each with its reason. */
  private acknowledgeJustifiedFindings(snapshotArns: readonly string[]): void {
    for (const child of this.node.children) {
      if (!(child instanceof ecs.FargateTaskDefinition)) continue;
      Validations.of(child).acknowledge({
        id: 'AwsSolutions-ECS2',
        reason:
          'The only plain variable is TIDEMARK_CONFIG_JSON: repository location, KMS key ARN, source URLs and env: references. It carries no secret; passwords arrive as ECS secrets from Secrets Manager.',
      });
    }
    Validations.of(this.executionRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken has no resource-level permissions; the image pull itself is scoped to the image repository.',
    });
    for (const arn of new Set(snapshotArns.map((a) => nagReference(Stack.of(this).resolve(a))))) {
      Validations.of(this.taskRole).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${arn}]`,
        reason:
          'The worker names each RDS snapshot at run time (tidemark-<source>-<time>), so the snapshot ARNs end in a wildcard after that prefix; they stay in this account and in the home or copy region, and creating one also needs the named instance or cluster.',
      });
    }
  }
}

function checkSources(sources: readonly SourceDeployment[]): void {
  const services = new Map<string, string>();
  for (const source of sources) {
    if (sources.filter((s) => s.name === source.name).length > 1) throw new Error(`BackupWorkers: source '${source.name}' is listed twice`);
    if (!source.stream) continue;
    const name = streamerServiceName(source.name);
    const other = services.get(name);
    if (other) throw new Error(`BackupWorkers: sources '${other}' and '${source.name}' would share the streamer service name '${name}'; rename one`);
    services.set(name, source.name);
  }
}

function checkSecrets(secrets: readonly WorkerSecret[]): void {
  const seen = new Set<string>();
  for (const secret of secrets) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secret.env)) throw new Error(`BackupWorkers: secret env '${secret.env}' is not a valid environment variable name`);
    if (seen.has(secret.env)) throw new Error(`BackupWorkers: two secrets for the environment variable ${secret.env}`);
    seen.add(secret.env);
  }
}

/**
 * The worker config must be valid and self-sufficient inside the container: every reference it
 * makes must be an environment variable ECS provides. Messages name keys and references, never
 * values that could be secrets.
 */
function checkWorkerConfig(json: string, sources: readonly SourceDeployment[], secretEnvs: ReadonlySet<string>): void {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    if (Token.isUnresolved(json)) return; // e.g. Stack.toJsonString(...): its content is known only at deploy time
    throw new Error('BackupWorkers: workerConfigJson is not valid JSON');
  }
  const parsed = TidemarkConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`BackupWorkers: workerConfigJson: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const config = parsed.data;
  const provided = [...secretEnvs].join(', ') || 'none';
  const checkRef = (key: string, ref: string | undefined) => {
    if (ref === undefined || ref.startsWith('kms:')) return;
    if (!ref.startsWith('env:')) {
      throw new Error(`BackupWorkers: workerConfigJson: ${key}: ${ref.split(':')[0]}: references cannot be resolved in the worker; use env: with one of its secrets (${provided})`);
    }
    if (!secretEnvs.has(ref.slice(4))) throw new Error(`BackupWorkers: workerConfigJson: ${key}: ${ref} is not one of the worker's secrets (${provided})`);
  };
  checkRef('encryption.key', config.encryption.key);
  (config.encryption.previousKeys ?? []).forEach((ref, i) => checkRef(`encryption.previousKeys[${i}]`, ref));
  for (const [name, source] of Object.entries(config.sources)) checkRef(`sources.${name}.password`, source.password);
  for (const source of sources) {
    if (!Object.hasOwn(config.sources, source.name)) throw new Error(`BackupWorkers: source '${source.name}' is missing from workerConfigJson`);
  }
}
