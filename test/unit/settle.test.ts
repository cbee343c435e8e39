import { allOrRelease } from '../../lib/core/settle';

describe('allOrRelease', () => {
  it('returns every value, in order, and releases nothing when all succeed', async () => {
    const release = jest.fn(async () => undefined);
    await expect(allOrRelease([Promise.resolve('a'), Promise.resolve(2)], [release, release])).resolves.toEqual(['a', 2]);
    expect(release).not.toHaveBeenCalled();
  });

  it('when one fails, releases what succeeded (after waiting for the slow ones) and throws the first failure by position', async () => {
    const released: string[] = [];
    const slow = new Promise<string>((r) => setTimeout(() => r('slow'), 20));
    const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('second')), 10));
    const early = Promise.reject(new Error('third'));
    const result = allOrRelease([slow, late, early, Promise.resolve('fast')], [
      async (v) => released.push(v),
      undefined,
      undefined,
      async (v) => released.push(v),
    ]);
    await expect(result).rejects.toThrow('second');
    expect(released.sort()).toEqual(['fast', 'slow']);
  });
});
