import fc from 'fast-check';
import { cronMatcher, toEventBridgeCron } from '../../lib/core/config/cron';
import { longestGapMinutes } from '../../lib/core/config/deployment';

describe('toEventBridgeCron', () => {
  it.each([
    ['0 3 * * *', 'cron(0 3 * * ? *)'],
    ['0 3 * * 0', 'cron(0 3 ? * 1 *)'],
    ['0 3 * * 7', 'cron(0 3 ? * 1 *)'],
    ['0 3 * * SAT', 'cron(0 3 ? * 7 *)'],
    ['0 2 * * 1-5', 'cron(0 2 ? * 2-6 *)'],
    ['*/15 * * * *', 'cron(*/15 * * * ? *)'],
    ['0 9,17 * * MON,WED,FRI', 'cron(0 9,17 ? * 2,4,6 *)'],
    ['15 3 1 JAN-JUN *', 'cron(15 3 1 1-6 ? *)'],
  ])('%s → %s', (cron, expected) => {
    expect(toEventBridgeCron(cron)).toBe(expected);
  });

  it.each([
    ['0 3 * *', /has 4 fields/],
    ['0 25 * * *', /hour '25' is not in 0-23/],
    ['0 3 * * 8', /day of week '8'/],
    ['0 3 1 * 1', /both day of month and day of week/],
    ['0 3 * * 5-1', /runs backwards/],
    ['0 3 * * 6-7', /wraps past Saturday/],
    ['*/0 * * * *', /not a valid cron field/],
  ])('fails for %s', (cron, message) => {
    expect(() => toEventBridgeCron(cron)).toThrow(message);
  });

  it('maps every day of week n (0–7) to EventBridge n % 7 + 1, and the matcher agrees with the day', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), (dow, hour, minute) => {
        expect(toEventBridgeCron(`${minute} ${hour} * * ${dow}`)).toBe(`cron(${minute} ${hour} ? * ${(dow % 7) + 1} *)`);
        const monday = Date.UTC(2026, 0, 5); // getUTCDay() = 1
        const at = new Date(monday + (((dow % 7) + 6) % 7) * 86_400_000 + hour * 3_600_000 + minute * 60_000);
        expect(cronMatcher(`${minute} ${hour} * * ${dow}`)(at)).toBe(true);
        expect(cronMatcher(`${minute} ${hour} * * ${dow}`)(new Date(at.getTime() + 86_400_000))).toBe(false);
      }),
    );
  });
});

describe('longestGapMinutes (the default RPO is derived from it)', () => {
  it.each<[string[], number]>([
    [['0 3 * * *'], 1440],
    [['0 * * * *'], 60],
    [['0 3 * * 0'], 10080],
    [['*/15 * * * *'], 15],
    [['0 1 * * *', '0 * * * *'], 60],
    [['0 2 * * 1-5'], 4320], // Friday 02:00 → Monday 02:00
    [['5/20 */6 * * *'], 320],
    [['0 0 1 * *'], 31 * 24 * 60], // monthly or rarer
  ])('%j → %d minutes', (crons, gap) => {
    expect(longestGapMinutes(crons)).toBe(gap);
  });
});
