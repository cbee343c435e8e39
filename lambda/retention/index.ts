import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { enforceRetention, type RetentionRunResult } from '../../lib/core/commands/retention-run';
import { objectLockDaysFromEnvironment, retentionPoliciesFromEnvironment, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** Scheduled (daily by default): applies each source's retention plan; never touches a locked object. */
export async function handler(_event?: unknown, context?: LambdaInvocationContext): Promise<RetentionRunResult> {
  useLambdaContext(context);
  return enforceRetention(storeFromEnvironment(), retentionPoliciesFromEnvironment(), { lockDays: objectLockDaysFromEnvironment() });
}

export type { RetentionRunResult };
