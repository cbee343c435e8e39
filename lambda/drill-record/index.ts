import { recordDrill, type DrillRecordEvent, type DrillRecordOutput } from '../../lib/core/commands/drill-record';
import { drillSourcesFromEnvironment } from '../../lib/core/commands/drill-target';
import { metricsNamespace, storeFromEnvironment } from '../../lib/core/lambda-environment';

/** The drill state machine's record step: the report, its metrics, the verdict (docs/aws-architecture.md). */
export async function handler(event: DrillRecordEvent): Promise<DrillRecordOutput> {
  return recordDrill(storeFromEnvironment(), drillSourcesFromEnvironment(), event, { namespace: metricsNamespace() });
}

export type { DrillRecordEvent, DrillRecordOutput };
