import fc from 'fast-check';
import { MAX_RECONNECT_WAIT_MS, RAN_LONG_MS, Reconnects } from '../../lib/core/engines/reconnect-backoff';

/** A receiver's runs: how long each lasted before it stopped (ms). */
const runs = fc.array(fc.integer({ min: 0, max: 2 * RAN_LONG_MS }), { minLength: 1, maxLength: 40 });
const firstMs = fc.constantFrom(250, 500, 1000);

/** The waits a streamer takes after each of `lengths`, its clock starting at 0. */
function waits(reconnects: Reconnects, lengths: readonly number[]): number[] {
  let now = 0;
  return lengths.map((length) => {
    const wait = reconnects.next(now, now + length);
    now += length + wait;
    return wait;
  });
}

describe('reconnect backoff of the streamers', () => {
  it('never waits longer than 10 s, or than a smaller ceiling given', () => {
    fc.assert(
      fc.property(runs, firstMs, fc.option(fc.integer({ min: 100, max: MAX_RECONNECT_WAIT_MS })), (lengths, first, maxMs) => {
        const ceiling = maxMs ?? MAX_RECONNECT_WAIT_MS;
        for (const wait of waits(new Reconnects({ firstMs: first, maxMs: maxMs ?? undefined }), lengths)) expect(wait).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('doubles from the first wait while the receiver keeps failing fast, and starts over after a long run', () => {
    fc.assert(
      fc.property(runs, firstMs, (lengths, first) => {
        const got = waits(new Reconnects({ firstMs: first }), lengths);
        let expected = first;
        lengths.forEach((length, i) => {
          if (length > RAN_LONG_MS) expected = first;
          expect(got[i]).toBe(Math.min(expected, MAX_RECONNECT_WAIT_MS));
          expected *= 2;
        });
      }),
    );
  });

  it('logs the first failures and then every power of two', () => {
    const reconnects = new Reconnects({ firstMs: 1000 });
    const logged = Array.from({ length: 20 }, () => (reconnects.next(0, 0), reconnects.worthLogging));
    expect(logged.flatMap((yes, i) => (yes ? [i + 1] : []))).toEqual([1, 2, 4, 8, 16]);
  });
});
