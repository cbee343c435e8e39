import { Stack, type App } from 'aws-cdk-lib';
import { planDeployments } from '../core/config/deployment';
import type { TidemarkConfig } from '../core/config/schema';
import { ReplicaVault } from './backup-vault';
import { TidemarkStack } from './tidemark-stack';

/** Stack names are API (renaming one replaces everything in it): Tidemark-<account>-<region>. */
export const stackName = (account: string, region: string): string => `Tidemark-${account}-${region}`;

/**
 * The whole deployment from one config: a TidemarkStack per account/region and, where
 * aws.replicaRegion is set, a stack in that region holding the replica vault (3-2-1).
 */
export function buildTidemarkApp(app: App, config: TidemarkConfig, origin = 'config'): TidemarkStack[] {
  return planDeployments(config, origin).map((deployment) => {
    const { account, region, aws } = deployment;
    let replica: ReplicaVault | undefined;
    if (aws.replicaRegion) {
      const replicaStack = new Stack(app, `${stackName(account, aws.replicaRegion)}-replica`, {
        env: { account, region: aws.replicaRegion },
        crossRegionReferences: true,
        description: `Tidemark replica vault for ${account}/${region}`,
      });
      replica = new ReplicaVault(replicaStack, 'ReplicaVault', { objectLock: aws.objectLock });
    }
    const stack = new TidemarkStack(app, stackName(account, region), {
      env: { account, region },
      crossRegionReferences: aws.replicaRegion !== undefined,
      description: `Tidemark backups: ${deployment.sources.map((s) => s.name).join(', ')}`.slice(0, 1024),
      config,
      deployment,
      replica: replica && { bucket: replica.bucket, key: replica.key },
    });
    return stack;
  });
}
