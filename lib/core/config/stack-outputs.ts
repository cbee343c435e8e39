import { createHash } from 'node:crypto';

/**
 * The stack outputs operators' commands read (`tidemark run … --aws`, `tidemark status --aws`).
 * They are a contract between lib/infra, which declares them, and lib/core/aws, which reads them
 * with DescribeStacks: renaming one breaks every CLI already installed, so they change only
 * deliberately. It lives in lib/core/config because both sides may import it.
 */
export const StackOutputNames = {
  /** ARN of the backup state machine (input `{ runs: [{ source, type }] }`). */
  backupStateMachine: 'BackupStateMachineArn',
  /** ARN of the drill state machine (input `{ source, kind: 'manual', at }`). */
  drillStateMachine: 'DrillStateMachineArn',
  /** `s3://bucket/prefix` of the vault: where the workers write, so where status reads. */
  repositoryUrl: 'RepositoryUrl',
  /** ARN of the ECS cluster the workers and streamers run in. */
  workersCluster: 'WorkersClusterArn',
} as const;

/** Stack names are API (renaming one replaces everything in it); lib/infra/tidemark-app.ts uses the same. */
export const tidemarkStackName = (account: string, region: string): string => `Tidemark-${account}-${region}`;

/**
 * Output key of a source's streamer service (its ARN). Output keys are alphanumeric, source names
 * may hold `.`, `_` and `-`: those are dropped and, so `a-b` and `ab` cannot collide, a short hash
 * of the real name is appended whenever something was dropped.
 */
export function streamerServiceOutput(source: string): string {
  const alnum = source.replace(/[^A-Za-z0-9]/g, '');
  if (alnum === source) return `StreamerService${source}`;
  return `StreamerService${alnum}${createHash('sha256').update(source).digest('hex').slice(0, 8)}`;
}
