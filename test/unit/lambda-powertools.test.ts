import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { handler as recordResult } from '../../lambda/record-result/index';
import { handler as rpoCheck } from '../../lambda/rpo-check/index';
import { emitMetrics, type MetricUnit } from '../../lib/core/metrics';
import { LocalKeyProvider } from '../../lib/core/crypto/local-key-provider';
import { FileStore } from '../../lib/core/repository/file-store';
import { Repository } from '../../lib/core/repository/repository';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';
import { TEST_KEY, useTempDir } from '../harness/tidemark';

/**
 * The handlers as they run on Lambda (AWS_LAMBDA_FUNCTION_NAME set): Powertools writes log records
 * and EMF lines straight to stdout/stderr, not through the runtime's console, in log.ts's shape
 * with the invocation's request id. (Off Lambda the same records go through console:
 * lambda-handlers.test.ts.)
 */
describe('Lambda handlers on Lambda: Powertools Logger and Metrics', () => {
  const dir = useTempDir('tidemark-powertools-');
  const saved = { ...process.env };
  const context = { awsRequestId: 'req-0001', functionName: 'tidemark-record-result', functionVersion: '$LATEST', invokedFunctionArn: 'arn:aws:lambda:eu-west-1:111111111111:function:tidemark-record-result', memoryLimitInMB: '256' };
  let out: { stdout: string[]; stderr: string[]; console: number };

  beforeAll(async () => {
    const repo = new Repository(new FileStore(`${dir.path}/repo`), new LocalKeyProvider(TEST_KEY, 'test key'));
    const writer = await repo.beginBackup('app', 'postgres', 'logical');
    await writer.writeObject('dump', Readable.from([randomBytes(1000)]), { compression: false });
    await writer.commit({ time: new Date(Date.now() - 120_000).toISOString() }, TEST_PG_LOGICAL_DETAILS);
    process.env.AWS_LAMBDA_FUNCTION_NAME = context.functionName;
    process.env.TIDEMARK_REPOSITORY_URL = pathToFileURL(`${dir.path}/repo`).href;
    process.env.TIDEMARK_METRICS_NAMESPACE = 'Tidemark';
    delete process.env.POWERTOOLS_DEV;
  });
  afterAll(() => {
    process.env = saved;
  });
  beforeEach(() => {
    out = { stdout: [], stderr: [], console: 0 };
    jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => (out.stdout.push(String(c)), true));
    jest.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (out.stderr.push(String(c)), true));
    for (const level of ['log', 'info', 'warn', 'error'] as const) jest.spyOn(console, level).mockImplementation(() => void out.console++);
  });
  afterEach(() => jest.restoreAllMocks());

  const lines = (chunks: string[]) => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

  test('record-result, failure: the EMF line alone on stdout, the error record on stderr with the request id', async () => {
    const result = await recordResult({ source: 'app', type: 'logical', outcome: 'failed', error: { Error: 'States.TaskFailed', Cause: 'exit 1' } }, context);

    expect(result).toEqual({ source: 'app', type: 'logical', ok: false });
    expect(out.console).toBe(0);
    // Each EMF line is the whole log event: no runtime prefix in front of the JSON.
    expect(out.stdout.join('')).toMatch(/^\{"_aws":\{"Timestamp":\d+,"CloudWatchMetrics":\[\{"Namespace":"Tidemark","Dimensions":\[\["Source"\]\]/);
    expect(lines(out.stdout)).toEqual([expect.objectContaining({ Source: 'app', BackupFailed: 1 })]);
    const [record] = lines(out.stderr);
    expect(Object.keys(record).slice(0, 2)).toEqual(['level', 'msg']);
    expect(record).toEqual({
      level: 'error',
      msg: 'backup failed',
      source: 'app',
      type: 'logical',
      error: 'States.TaskFailed',
      cause: 'exit 1',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      requestId: 'req-0001',
      coldStart: expect.any(Boolean),
    });
  });

  test('record-result, success and rpo-check: metrics on stdout, warnings for a source without backups on stderr', async () => {
    await recordResult({ source: 'app', type: 'logical', outcome: 'succeeded' }, context);
    process.env.TIDEMARK_SOURCES = JSON.stringify(['app', 'never']);
    const checked = await rpoCheck(undefined, { ...context, awsRequestId: 'req-0002' });

    expect(checked).toEqual({ measured: ['app'], withoutBackup: ['never'], failed: [] });
    expect(out.console).toBe(0);
    const metrics = lines(out.stdout);
    expect(metrics).toEqual([
      expect.objectContaining({ Source: 'app', BackupSucceeded: 1, BackupStoredBytes: expect.any(Number), SecondsSinceNewestRestorablePoint: expect.any(Number) }),
      expect.objectContaining({ Source: 'app', SecondsSinceNewestRestorablePoint: expect.any(Number) }),
    ]);
    expect(metrics[1].SecondsSinceNewestRestorablePoint).toBeGreaterThanOrEqual(120);
    expect(lines(out.stderr)).toEqual([expect.objectContaining({ level: 'warn', source: 'never', requestId: 'req-0002' })]);
  });
});

describe('emitMetrics built by Powertools Metrics', () => {
  const name = fc.string({ minLength: 1, maxLength: 40 }).filter((n) => n !== '_aws' && !(n in Object.prototype));
  const unit = fc.constantFrom<MetricUnit>('Count', 'Bytes', 'Seconds');
  const value = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 });

  test.each([
    ['a blank dimension value', { Source: ' ' }, 'BackupFailed', /Source needs a non-blank string value/],
    ['a blank dimension name', { ' ': 'app' }, 'BackupFailed', /dimension name " " is blank/],
    ['a metric named like an Object.prototype member', { Source: 'app' }, 'toString', /metric name "toString" is reserved/],
  ])('fails on %s rather than having it dropped', (_what, dimensions, metric, error) => {
    const write = jest.fn();
    expect(() => emitMetrics('Tidemark', dimensions, { [metric]: { value: 1, unit: 'Count' } }, write)).toThrow(error);
    expect(write).not.toHaveBeenCalled();
  });

  test('every dimension and metric arrives with its value and unit, nothing else is added', () => {
    fc.assert(
      fc.property(
        fc.dictionary(name.filter((n) => n.trim() !== ''), fc.string({ minLength: 1, maxLength: 20 }).filter((v) => v.trim() !== ''), { maxKeys: 5 }),
        fc.dictionary(name, fc.record({ value, unit }), { minKeys: 1, maxKeys: 10 }),
        fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }),
        (dimensions, metrics, at) => {
          fc.pre(Object.keys(metrics).every((m) => !Object.hasOwn(dimensions, m)));
          const written: string[] = [];
          const line = emitMetrics('Tidemark', dimensions, metrics, (l) => written.push(l), at);
          expect(written).toEqual([line]);
          const doc = JSON.parse(line) as Record<string, unknown> & { _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] } };
          const [directive] = doc._aws.CloudWatchMetrics;
          expect(doc._aws.Timestamp).toBe(at.getTime());
          expect(directive.Namespace).toBe('Tidemark');
          expect(directive.Dimensions).toEqual([Object.keys(dimensions)]);
          expect(directive.Metrics).toEqual(Object.entries(metrics).map(([Name, m]) => ({ Name, Unit: m.unit })));
          const members = Object.fromEntries(Object.entries(doc).filter(([k]) => k !== '_aws'));
          expect(members).toEqual({ ...dimensions, ...Object.fromEntries(Object.entries(metrics).map(([k, m]) => [k, m.value + 0])) }); // + 0: JSON has no -0
        },
      ),
      { numRuns: 300 },
    );
  });
});
