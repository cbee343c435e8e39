import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { chooseDrillTarget, drillSourcesFromEnvironment, type DrillTargetEvent, type DrillTargetOutput } from '../../lib/core/commands/drill-target';
import { storeFromEnvironment } from '../../lib/core/lambda-environment';

/** The drill state machine's first step: what to restore (docs/aws-architecture.md, "Drills"). */
export async function handler(event: DrillTargetEvent, context?: LambdaInvocationContext): Promise<DrillTargetOutput> {
  useLambdaContext(context);
  return chooseDrillTarget(storeFromEnvironment(), drillSourcesFromEnvironment(), event);
}

export type { DrillTargetEvent, DrillTargetOutput };
