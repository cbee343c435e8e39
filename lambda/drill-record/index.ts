import { useLambdaContext, type LambdaInvocationContext } from '../../lib/core/aws/lambda-telemetry';
import { recordDrill, type DrillRecordEvent, type DrillRecordOutput } from '../../lib/core/commands/drill-record';
import { drillSourcesFromEnvironment } from '../../lib/core/commands/drill-target';
import { metricsNamespace, storeFromEnvironment } from '../../lib/core/lambda-environment';
import { defaultMetricsSink } from '../../lib/core/metrics';

/** The drill state machine's record step: the report, its metrics, the verdict (docs/aws-architecture.md, "Drills"). */
export async function handler(event: DrillRecordEvent, context?: LambdaInvocationContext): Promise<DrillRecordOutput> {
  useLambdaContext(context);
  return recordDrill(storeFromEnvironment(), drillSourcesFromEnvironment(), event, { namespace: metricsNamespace(), write: defaultMetricsSink });
}

export type { DrillRecordEvent, DrillRecordOutput };
