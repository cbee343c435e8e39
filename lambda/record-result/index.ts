import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { recordBackupResult, type RecordResultEvent, type RecordResultOutput } from '../../lib/core/commands/record-result';
import { metricsNamespace, storeFromEnvironment } from '../../lib/core/lambda-environment';
import { defaultMetricsSink } from '../../lib/core/metrics';

/** The backup state machine's record-result step (docs/aws-architecture.md). Logs and metrics through Powertools. */
export async function handler(event: RecordResultEvent, context?: LambdaInvocationContext): Promise<RecordResultOutput> {
  useLambdaContext(context);
  return recordBackupResult(storeFromEnvironment(), event, { namespace: metricsNamespace(), write: defaultMetricsSink });
}

export type { RecordResultEvent, RecordResultOutput };
