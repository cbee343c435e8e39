import { Annotations, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { toEventBridgeCron } from '../core/config/cron';
import { parseDuration } from '../core/config/duration';
import { workerConfig, type Deployment } from '../core/config/deployment';
import { mergePolicy } from '../core/config/retention';
import type { TidemarkConfig } from '../core/config/schema';
import { StackOutputNames, streamerServiceOutput } from '../core/config/stack-outputs';
import { BackupFunctions } from './backup-functions';
import { BackupObservability } from './backup-observability';
import { BackupSchedules } from './backup-schedules';
import { BackupStateMachine } from './backup-state-machine';
import { BackupVault, type VaultReplica } from './backup-vault';
import { BackupWorkers } from './backup-workers';
import { DrillFunctions } from './drill-functions';
import { planDrillRuns, DrillSchedules } from './drill-schedules';
import { DrillStateMachine } from './drill-state-machine';
import { DrillTeardown } from './drill-teardown';
import { RetentionFunctions } from './retention-functions';

export interface TidemarkStackProps extends StackProps {
  /** The whole config: the workers need each source's URL. */
  readonly config: TidemarkConfig;
  /** What this stack deploys (`planDeployments(config)`). */
  readonly deployment: Deployment;
  /** The replica vault in `aws.replicaRegion`, when there is one. @default - no replication */
  readonly replica?: VaultReplica;
}

/**
 * One account/region of Tidemark: the vault, the workers that fill it, the state machine and
 * schedules that drive them, the Lambdas that record and measure, and the alarms that page.
 */
export class TidemarkStack extends Stack {
  readonly vault: BackupVault;
  readonly workers: BackupWorkers;
  readonly functions: BackupFunctions;
  readonly backup: BackupStateMachine;
  readonly schedules: BackupSchedules;
  readonly observability: BackupObservability;
  readonly drillFunctions: DrillFunctions;
  readonly drill: DrillStateMachine;
  readonly drillSchedules: DrillSchedules;
  readonly drillTeardown: DrillTeardown;
  readonly retention: RetentionFunctions;

  constructor(scope: Construct, id: string, props: TidemarkStackProps) {
    super(scope, id, props);
    const { deployment, config } = props;
    const { aws } = deployment;

    this.vault = new BackupVault(this, 'Vault', {
      objectLock: aws.objectLock,
      coldStorageClass: aws.coldStorageClass,
      replica: props.replica,
    });

    const vpc = 'id' in aws.vpc
      ? ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
          vpcId: aws.vpc.id,
          availabilityZones: aws.vpc.availabilityZones,
          privateSubnetIds: aws.vpc.subnetIds,
        })
      : undefined;
    this.workers = new BackupWorkers(this, 'Workers', {
      sources: deployment.sources,
      // Plain JSON with the bucket and key as embedded tokens, so the workers can check it at synth.
      workerConfigJson: JSON.stringify(
        workerConfig(config, deployment, { bucketName: this.vault.bucket.bucketName, prefix: this.vault.prefix, keyArn: this.vault.key.keyArn }),
      ),
      ...(vpc ? { vpc } : { vpcCidr: 'cidr' in aws.vpc ? aws.vpc.cidr : undefined, maxAzs: 'cidr' in aws.vpc ? aws.vpc.maxAzs : undefined }),
      cpu: aws.worker.cpu,
      memoryMiB: aws.worker.memoryMiB,
      ephemeralStorageGiB: aws.worker.ephemeralStorageGiB,
    });
    this.vault.grantWrite(this.workers.taskDefinition.taskRole);

    this.functions = new BackupFunctions(this, 'Functions', { vault: this.vault, sources: deployment.sources });

    const streamers = new Map(
      [...this.workers.streamers].map(([source, service]) => [source, { serviceName: service.serviceName, clusterName: this.workers.cluster.clusterName }]),
    );
    this.observability = new BackupObservability(this, 'Observability', {
      sources: deployment.sources,
      streamers,
      alarmEmail: aws.alarmEmail,
    });

    this.backup = new BackupStateMachine(this, 'Backup', {
      cluster: this.workers.cluster,
      taskDefinition: this.workers.taskDefinition,
      container: this.workers.container,
      securityGroups: [this.workers.securityGroup],
      subnets: this.workers.subnets,
      recordResult: this.functions.recordResult,
      topic: this.observability.topic,
      maxConcurrency: aws.maxConcurrency,
      taskTimeout: Duration.seconds(parseDuration(aws.worker.timeout)),
    });

    this.observability.watchStateMachine(this.backup.stateMachine);

    this.schedules = new BackupSchedules(this, 'Schedules', { stateMachine: this.backup.stateMachine, runs: deployment.schedules });
    // Restore drills: the same workers restore into their own storage (or RDS restores a new
    // instance), checked, recorded and always torn down; scheduled per source (docs/aws-architecture.md).
    this.drillFunctions = new DrillFunctions(this, 'DrillFunctions', { vault: this.vault, sources: deployment.sources });
    this.drill = new DrillStateMachine(this, 'Drill', {
      cluster: this.workers.cluster,
      taskDefinition: this.workers.taskDefinition,
      container: this.workers.container,
      securityGroups: [this.workers.securityGroup],
      subnets: this.workers.subnets,
      chooseTarget: this.drillFunctions.chooseTarget,
      record: this.drillFunctions.record,
      topic: this.observability.topic,
      rdsInstances: deployment.sources.flatMap((s) => (s.rds?.instance ? [s.rds.instance] : [])),
      taskTimeout: Duration.seconds(parseDuration(aws.worker.timeout)),
      // Restores that outgrow the task's ephemeral storage (≤ 200 GiB) get an EBS scratch volume.
      scratchVolumeGiB: drillScratchGiB(config, deployment, aws.worker.ephemeralStorageGiB),
    });
    this.drillSchedules = new DrillSchedules(this, 'DrillSchedules', { stateMachine: this.drill.stateMachine, runs: planDrillRuns(config, deployment) });
    // A stopped or timed-out execution skips every Catch: tear down what it provisioned from outside.
    this.drillTeardown = new DrillTeardown(this, 'DrillTeardown', {
      stateMachine: this.drill.stateMachine,
      cluster: this.workers.cluster,
      vault: this.vault,
      environment: this.drillFunctions.environment,
    });
    this.observability.watchFunction('DrillTeardown', this.drillTeardown.function, 'drill teardown', 'A throwaway RDS instance (tidemark-drill-<drill id>) or drill task may still run: delete or stop it.');

    // Retention and tiering: daily, each source by its merged policy; failures page.
    this.retention = new RetentionFunctions(this, 'Retention', {
      vault: this.vault,
      policies: Object.fromEntries(deployment.sources.map((s) => [s.name, mergePolicy(config, config.sources[s.name])])),
      objectLockDays: aws.objectLock.days,
      timeZone: aws.timeZone,
      retentionCron: toEventBridgeCron(aws.maintenance.retention),
      tieringCron: toEventBridgeCron(aws.maintenance.tiering),
    });
    this.observability.watchFunction('Retention', this.retention.retention, 'retention');
    this.observability.watchFunction('Tiering', this.retention.tiering, 'tiering');
    for (const warning of deployment.warnings) Annotations.of(this).addWarningV2('tidemark:schedule-unavailable', warning);

    // What `tidemark run … --aws` and `tidemark status --aws` read (lib/core/config/stack-outputs.ts).
    exportStateMachine(this, StackOutputNames.backupStateMachine, this.backup.stateMachine);
    exportStateMachine(this, StackOutputNames.drillStateMachine, this.drill.stateMachine);
    stackOutput(this, StackOutputNames.repositoryUrl, this.vault.repositoryUrl, 'Tidemark repository (the vault): tidemark status --aws reads backups and drill reports here');
    stackOutput(this, StackOutputNames.workersCluster, this.workers.cluster.clusterArn, 'ECS cluster of the backup workers and streamers');
    for (const [source, service] of this.workers.streamers) {
      stackOutput(this, streamerServiceOutput(source), service.serviceArn, `Streamer service of source ${source}`);
    }
  }
}

/** The largest `drill.restoreSizeGiB` above the worker's ephemeral storage, if any. */
function drillScratchGiB(config: TidemarkConfig, deployment: Deployment, ephemeralGiB: number): number | undefined {
  const sizes = deployment.sources.map((s) => config.sources[s.name]?.drill?.restoreSizeGiB ?? 0).filter((g) => g > ephemeralGiB);
  return sizes.length > 0 ? Math.max(...sizes) : undefined;
}

/**
 * Exports a state machine's ARN under `name` (a StackOutputNames value) so the CLI can start it:
 * `exportStateMachine(stack, StackOutputNames.drillStateMachine, drill.stateMachine)`.
 */
export function exportStateMachine(stack: Stack, name: string, stateMachine: sfn.IStateMachine): CfnOutput {
  return stackOutput(stack, name, stateMachine.stateMachineArn, `Tidemark: tidemark run … --aws starts this state machine`);
}

/** An output whose key is exactly `name`, wherever it is declared: the CLI looks it up by that key. */
function stackOutput(stack: Stack, name: string, value: string, description: string): CfnOutput {
  const output = new CfnOutput(stack, name, { value, description });
  output.overrideLogicalId(name);
  return output;
}
