import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { handler as recordResult } from '../../lambda/record-result/index';
import { handler as rpoCheck } from '../../lambda/rpo-check/index';
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
