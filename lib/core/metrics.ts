import { Metrics, MetricUnit as PowertoolsUnit } from '@aws-lambda-powertools/metrics';
import { onLambda } from './aws/runtime';

/**
 * Metrics as CloudWatch Embedded Metric Format: one JSON log line per emission, which CloudWatch
 * Logs turns into metrics. No client, no API call: a Lambda (or any process whose stdout reaches
 * CloudWatch Logs) only has to print the line.
 *
 *   {"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":"Tidemark","Dimensions":[["Source"]],
 *     "Metrics":[{"Name":"BackupFailed","Unit":"Count"}]}]},"Source":"app","BackupFailed":1}
 *
 * The document is built by Powertools for AWS Lambda (Metrics.serializeMetrics), the line goes to
 * a sink the caller chooses: the local runtime and the tests capture it, a Lambda prints it.
 * Powertools costs little (measured 2026-12-01 with esbuild as the functions are bundled: Logger +
 * Metrics are 34.6 KB minified, 10.9 KB gzipped, about 14 ms to load, against 1.71 MB and ~210 ms
 * for the whole record-result bundle, most of it zod and the AWS SDK), so there is no reason to
 * keep a writer of our own.
 *
 * Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */

export type MetricUnit = 'Count' | 'Bytes' | 'Seconds';

export interface MetricValue {
  readonly value: number;
  readonly unit: MetricUnit;
}

// Limits of the EMF specification (Powertools keeps one of the 30 dimensions for `service`); a line
// breaking them is dropped by CloudWatch without a word.
const MAX_DIMENSIONS = 29;
const MAX_METRICS = 100;
const MAX_NAME_LENGTH = 255;

const UNITS: Readonly<Record<MetricUnit, (typeof PowertoolsUnit)[keyof typeof PowertoolsUnit]>> = {
  Count: PowertoolsUnit.Count,
  Bytes: PowertoolsUnit.Bytes,
  Seconds: PowertoolsUnit.Seconds,
};

/** Powertools reports problems through a logger; ours are thrown before it is called. */
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** One serializer per namespace, reused (emptied after each line) as Powertools intends. */
const serializers = new Map<string, Metrics>();

function serializer(namespace: string): Metrics {
  let metrics = serializers.get(namespace);
  if (!metrics) {
    metrics = new Metrics({ namespace, logger: quiet });
    // No `service` dimension: the alarms watch exactly the dimensions given here ({ Source }).
    metrics.clearDefaultDimensions();
    serializers.set(namespace, metrics);
  }
  return metrics;
}

/**
 * Where a line goes by default. On Lambda it is written to stdout as is, like Powertools' own
 * publishStoredMetrics does: the runtime's console.log would prefix it (time, request id, level)
 * and the EMF specification asks for a log event that is the JSON object and nothing else.
 * Elsewhere console.log, which the local runtime and the tests watch.
 */
export function defaultMetricsSink(line: string): void {
  if (onLambda()) process.stdout.write(`${line}\n`);
  else console.log(line);
}

/**
 * Writes one EMF line: every metric in `metrics` under `namespace`, with `dimensions` as the one
 * dimension set. Returns the line. Throws on input CloudWatch would silently reject (empty names,
 * non-finite values, a metric named like a dimension), because a metric that never arrives looks
 * exactly like a pipeline that never ran; Powertools would only warn.
 */
export function emitMetrics(
  namespace: string,
  dimensions: Readonly<Record<string, string>>,
  metrics: Readonly<Record<string, MetricValue>>,
  write: (line: string) => void = defaultMetricsSink,
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
    // CloudWatch wants a non-blank name and value; Powertools drops a blank one with only a warning,
    // which would file the metric under another dimension set than the alarm watches.
    if (name.trim() === '') throw new RangeError(`dimension name ${JSON.stringify(name)} is blank`);
    if (typeof value !== 'string' || value.trim() === '') throw new RangeError(`dimension ${name} needs a non-blank string value, got ${JSON.stringify(value)}`);
  }
  for (const name of metricNames) {
    checkName('metric name', name);
    if (name === '_aws' || Object.hasOwn(dimensions, name)) throw new RangeError(`metric ${name} collides with a dimension of the same name`);
    const { value, unit } = metrics[name];
    if (!Number.isFinite(value)) throw new RangeError(`metric ${name} needs a finite number, got ${value}`);
    if (!Object.hasOwn(UNITS, unit)) throw new RangeError(`metric ${name} has unit ${JSON.stringify(unit)}; expected one of ${Object.keys(UNITS).join(', ')}`);
  }

  const builder = serializer(namespace);
  let document: ReturnType<Metrics['serializeMetrics']>;
  try {
    if (dimensionNames.length > 0) builder.addDimensions({ ...dimensions });
    for (const name of metricNames) builder.addMetric(name, UNITS[metrics[name].unit], metrics[name].value);
    builder.setTimestamp(at);
    document = builder.serializeMetrics();
  } finally {
    builder.clearMetrics();
    builder.clearDimensions();
    builder.clearMetadata();
  }
  // Powertools writes no dimension set at all when there are no dimensions; one empty set is what
  // the specification describes for a metric without dimensions.
  for (const directive of document._aws.CloudWatchMetrics) {
    const sets = directive.Dimensions as string[][];
    if (sets.length === 0) sets.push([]);
  }
  const line = JSON.stringify(document);
  write(line);
  return line;
}

function checkName(what: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new RangeError(`EMF ${what} must be 1–${MAX_NAME_LENGTH} characters, got ${JSON.stringify(name)}`);
  }
  // Powertools keeps metrics and dimensions in plain objects: `constructor` or `__proto__` would
  // collide with Object.prototype there (found by the property test in lambda-powertools.test.ts).
  if (name in Object.prototype) throw new RangeError(`EMF ${what} ${JSON.stringify(name)} is reserved (an Object.prototype member)`);
}
