import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { enforceTiering, type TieringRunResult } from '../../lib/core/commands/retention-run';
import { objectLockDaysFromEnvironment, retentionPoliciesFromEnvironment, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** Scheduled (daily by default): tags whole chains of long-term keeps warm or cold (config/tiers.ts). */
export async function handler(_event?: unknown, context?: LambdaInvocationContext): Promise<TieringRunResult> {
  useLambdaContext(context);
  return enforceTiering(storeFromEnvironment(), retentionPoliciesFromEnvironment(), { lockDays: objectLockDaysFromEnvironment() });
}

export type { TieringRunResult };
