import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { planDeployments, type Deployment } from '../config/deployment';
import { sourceConfig } from '../config/load';
import type { TidemarkConfig } from '../config/schema';
import { tidemarkStackName } from '../config/stack-outputs';
import { ConfigError, TidemarkError } from '../errors';
import { awsCallFailed } from './aws-failure';

/** The deployed stack has no output the command needs: an older Tidemark, or another stack. */
export class StackOutputMissing extends TidemarkError {}

/** Where a source's stack lives: its name and region (the account is whoever's credentials are used). */
export interface StackLocation {
  readonly stackName: string;
  /** undefined: the SDK's default region (AWS_REGION, the profile), only with `--stack`. */
  readonly region?: string;
}

/**
 * The stack that backs `source` up: `Tidemark-<account>-<region>` of its placement
 * (planDeployments), or the `--stack` override in the same region. The override exists for stacks
 * deployed under another name (a second app, a renamed copy).
 */
export function locateStack(config: TidemarkConfig, source: string, override?: string): StackLocation {
  const src = sourceConfig(config, source);
  const region = src.aws?.region ?? config.aws?.region;
  if (override) return { stackName: override, region };
  const account = src.aws?.account ?? config.aws?.account;
  if (!account || !region) {
    throw new ConfigError(`sources.${source}: no AWS account/region to find its stack in (set aws.account and aws.region, or pass --stack)`);
  }
  return { stackName: tidemarkStackName(account, region), region };
}

/** Every deployment of the config with its stack's location (status covers them all). */
export function locateDeployments(config: TidemarkConfig): { readonly deployment: Deployment; readonly location: StackLocation }[] {
  return planDeployments(config).map((deployment) => ({
    deployment,
    location: { stackName: tidemarkStackName(deployment.account, deployment.region), region: deployment.region },
  }));
}

/** A deployed stack's outputs, read once; `require` names the stack and the output when one is missing. */
export class DeployedStack {
  private constructor(
    readonly location: StackLocation,
    private readonly outputs: ReadonlyMap<string, string>,
  ) {}

  static async describe(location: StackLocation, options: { signal?: AbortSignal } = {}): Promise<DeployedStack> {
    const client = new CloudFormationClient(location.region ? { region: location.region } : {});
    const where = `${location.stackName}${location.region ? ` in ${location.region}` : ''}`;
    let stack;
    try {
      const answer = await client.send(new DescribeStacksCommand({ StackName: location.stackName }), { abortSignal: options.signal });
      stack = answer.Stacks?.[0];
    } catch (e) {
      // CloudFormation answers a missing stack with a ValidationError, not a 404.
      if ((e as Error).name === 'ValidationError' && /does not exist/.test((e as Error).message)) {
        throw new StackOutputMissing(`stack ${where} does not exist: deploy it (npx cdk deploy) or name the right one with --stack`, { cause: e });
      }
      throw awsCallFailed(`reading the outputs of stack ${where}`, e);
    } finally {
      client.destroy();
    }
    if (!stack) throw new StackOutputMissing(`stack ${where} does not exist: deploy it (npx cdk deploy) or name the right one with --stack`);
    const outputs = new Map((stack.Outputs ?? []).flatMap((o) => (o.OutputKey && o.OutputValue ? [[o.OutputKey, o.OutputValue] as const] : [])));
    return new DeployedStack(location, outputs);
  }

  get(name: string): string | undefined {
    return this.outputs.get(name);
  }

  require(name: string): string {
    const value = this.outputs.get(name);
    if (value !== undefined) return value;
    const where = `${this.location.stackName}${this.location.region ? ` in ${this.location.region}` : ''}`;
    throw new StackOutputMissing(`stack ${where} has no output ${name}: deploy this version of Tidemark to it (npx cdk deploy), or name the right stack with --stack`);
  }
}
