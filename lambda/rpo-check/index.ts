import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { checkRecoveryPoints, type RpoCheckResult } from '../../lib/core/commands/rpo-check';
import { metricsNamespace, sourcesFromEnvironment, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** Scheduled every minute: SecondsSinceNewestRestorablePoint per source, for the RPO alarms. Logs and metrics through Powertools. */
export async function handler(_event?: unknown, context?: LambdaInvocationContext): Promise<RpoCheckResult> {
  useLambdaContext(context);
  return checkRecoveryPoints(storeFromEnvironment(), sourcesFromEnvironment(), metricsNamespace());
}

export type { RpoCheckResult };
