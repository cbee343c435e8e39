/**
 * Metrics as CloudWatch Embedded Metric Format: one JSON log line per emission, which CloudWatch
 * Logs turns into metrics. No client, no API call, no dependency; a Lambda (or any process whose
 * stdout reaches CloudWatch Logs) only has to print the line.
 *
 *   {"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":"Tidemark","Dimensions":[["Source"]],
 *     "Metrics":[{"Name":"BackupFailed","Unit":"Count"}]}]},"Source":"app","BackupFailed":1}
 *
 * Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */

export type MetricUnit = 'Count' | 'Bytes' | 'Seconds';

export interface MetricValue {
  readonly value: number;
  readonly unit: MetricUnit;
}

// Limits of the EMF specification; a line breaking them is dropped by CloudWatch without a word.
const MAX_DIMENSIONS = 30;
const MAX_METRICS = 100;
const MAX_NAME_LENGTH = 255;

/**
 * Writes one EMF line: every metric in `metrics` under `namespace`, with `dimensions` as the one
 * dimension set. Returns the line. Throws on input CloudWatch would silently reject (empty names,
 * non-finite values, a metric named like a dimension), because a metric that never arrives looks
 * exactly like a pipeline that never ran.
 */
export function emitMetrics(
  namespace: string,
  dimensions: Readonly<Record<string, string>>,
  metrics: Readonly<Record<string, MetricValue>>,
  write: (line: string) => void = console.log,
  at: Date = new Date(),
): string {
  checkName('namespace', namespace);
  const dimensionNames = Object.keys(dimensions);
  const metricNames = Object.keys(metrics);
  if (dimensionNames.length > MAX_DIMENSIONS) {
    throw new RangeError(`EMF allows at most ${MAX_DIMENSIONS} dimensions, got ${dimensionNames.length}`);
  }
  if (metricNames.length === 0) throw new RangeError('emitMetrics needs at least one metric');
  if (metricNames.length > MAX_METRICS) throw new RangeError(`EMF allows at most ${MAX_METRICS} metrics per line, got ${metricNames.length}`);
  for (const name of dimensionNames) {
    checkName('dimension name', name);
    if (name === '_aws') throw new RangeError("'_aws' is reserved in EMF");
    const value = dimensions[name];
    if (typeof value !== 'string' || value === '') throw new RangeError(`dimension ${name} needs a non-empty string value, got ${JSON.stringify(value)}`);
  }
  for (const name of metricNames) {
    checkName('metric name', name);
    if (name === '_aws' || name in dimensions) throw new RangeError(`metric ${name} collides with a dimension of the same name`);
    const { value } = metrics[name];
    if (!Number.isFinite(value)) throw new RangeError(`metric ${name} needs a finite number, got ${value}`);
  }
  const line = JSON.stringify({
    _aws: {
      Timestamp: at.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: namespace,
          Dimensions: [dimensionNames],
          Metrics: metricNames.map((name) => ({ Name: name, Unit: metrics[name].unit })),
        },
      ],
    },
    ...dimensions,
    ...Object.fromEntries(metricNames.map((name) => [name, metrics[name].value])),
  });
  write(line);
  return line;
}

function checkName(what: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new RangeError(`EMF ${what} must be 1–${MAX_NAME_LENGTH} characters, got ${JSON.stringify(name)}`);
  }
}
