import { emitMetrics } from '../../lib/core/metrics';

/** The structure the EMF specification requires of a log line, checked field by field. */
function expectEmfStructure(doc: Record<string, unknown>): void {
  const aws = doc._aws as { Timestamp: unknown; CloudWatchMetrics: unknown };
  expect(Number.isInteger(aws.Timestamp)).toBe(true);
  expect(Array.isArray(aws.CloudWatchMetrics)).toBe(true);
  for (const directive of aws.CloudWatchMetrics as { Namespace: unknown; Dimensions: unknown; Metrics: unknown }[]) {
    expect(typeof directive.Namespace).toBe('string');
    expect(Array.isArray(directive.Dimensions)).toBe(true);
    for (const set of directive.Dimensions as unknown[][]) {
      // Every referenced dimension is a top-level string member.
      for (const name of set) expect(typeof doc[name as string]).toBe('string');
    }
    for (const metric of directive.Metrics as { Name: string; Unit: string }[]) {
      expect(Object.keys(metric).sort()).toEqual(['Name', 'Unit']);
      // Every metric's value is a top-level number member.
      expect(typeof doc[metric.Name]).toBe('number');
    }
  }
}

describe('emitMetrics', () => {
  test('writes one line that parses and follows the EMF structure', () => {
    // GIVEN
    const lines: string[] = [];
    const at = new Date('2026-11-24T07:57:40.123Z');

    // WHEN
    const returned = emitMetrics(
      'Tidemark',
      { Source: 'app' },
      {
        BackupSucceeded: { value: 1, unit: 'Count' },
        BackupStoredBytes: { value: 123456, unit: 'Bytes' },
        SecondsSinceNewestRestorablePoint: { value: 42, unit: 'Seconds' },
      },
      (line) => lines.push(line),
      at,
    );

    // THEN
    expect(lines).toEqual([returned]);
    expect(returned).not.toContain('\n');
    const doc = JSON.parse(returned) as Record<string, unknown>;
    expectEmfStructure(doc);
    expect(doc).toEqual({
      _aws: {
        Timestamp: at.getTime(),
        CloudWatchMetrics: [
          {
            Namespace: 'Tidemark',
            Dimensions: [['Source']],
            Metrics: [
              { Name: 'BackupSucceeded', Unit: 'Count' },
              { Name: 'BackupStoredBytes', Unit: 'Bytes' },
              { Name: 'SecondsSinceNewestRestorablePoint', Unit: 'Seconds' },
            ],
          },
        ],
      },
      Source: 'app',
      BackupSucceeded: 1,
      BackupStoredBytes: 123456,
      SecondsSinceNewestRestorablePoint: 42,
    });
  });

  test('defaults to console.log and the current time', () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const before = Date.now();
      emitMetrics('Tidemark', { Source: 'app' }, { BackupFailed: { value: 1, unit: 'Count' } });
      expect(log).toHaveBeenCalledTimes(1);
      const doc = JSON.parse(log.mock.calls[0][0] as string) as { _aws: { Timestamp: number } };
      expect(doc._aws.Timestamp).toBeGreaterThanOrEqual(before);
      expect(doc._aws.Timestamp).toBeLessThanOrEqual(Date.now());
    } finally {
      log.mockRestore();
    }
  });

  test('with no dimensions the dimension set is empty', () => {
    const doc = JSON.parse(emitMetrics('Tidemark', {}, { DrillFailed: { value: 0, unit: 'Count' } }, () => undefined)) as {
      _aws: { CloudWatchMetrics: { Dimensions: unknown }[] };
    };
    expect(doc._aws.CloudWatchMetrics[0].Dimensions).toEqual([[]]);
  });

  test.each([
    ['an empty namespace', '', { Source: 'app' }, { A: { value: 1, unit: 'Count' as const } }, /namespace/],
    ['no metrics', 'Tidemark', { Source: 'app' }, {}, /at least one metric/],
    ['a NaN value', 'Tidemark', { Source: 'app' }, { A: { value: Number.NaN, unit: 'Count' as const } }, /finite/],
    ['an infinite value', 'Tidemark', { Source: 'app' }, { A: { value: Infinity, unit: 'Seconds' as const } }, /finite/],
    ['an empty dimension value', 'Tidemark', { Source: '' }, { A: { value: 1, unit: 'Count' as const } }, /Source/],
    ['a metric named like a dimension', 'Tidemark', { Source: 'app' }, { Source: { value: 1, unit: 'Count' as const } }, /collides/],
  ])('fails when given %s', (_what, namespace, dimensions, metrics, message) => {
    const write = jest.fn();
    expect(() => emitMetrics(namespace, dimensions, metrics, write)).toThrow(message);
    expect(write).not.toHaveBeenCalled();
  });
});
