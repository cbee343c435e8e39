/**
 * Schedules in the config are standard five-field cron ("0 3 * * 0": 03:00 on Sundays), which
 * everyone reads; EventBridge Scheduler wants its own six-field dialect ("cron(0 3 ? * 1 *)",
 * days of week 1–7 from Sunday, one of day-of-month/day-of-week as '?'). This module validates the
 * former and translates it, so a bad schedule fails at synth with the key named, not at 3 a.m.
 */

interface Field {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] },
  { name: 'day of week', min: 0, max: 7, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

export class CronError extends Error {}

/** A value of a field: a number or a name (JAN, SUN), as a number in the field's range. */
function value(field: Field, text: string): number {
  const upper = text.toUpperCase();
  const named = field.names?.indexOf(upper) ?? -1;
  const n = named >= 0 ? named + (field.name === 'month' ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < field.min || n > field.max) {
    throw new CronError(`${field.name} '${text}' is not in ${field.min}-${field.max}${field.names ? ` or ${field.names[0]}-${field.names.at(-1)}` : ''}`);
  }
  return n;
}

/** Checks one field (lists, ranges, steps) and returns it in EventBridge form. */
function translate(field: Field, text: string): string {
  return text
    .split(',')
    .map((part) => {
      const [range, step, extra] = part.split('/');
      if (extra !== undefined || range === '' || (step !== undefined && !/^[1-9]\d*$/.test(step))) {
        throw new CronError(`${field.name} '${part}' is not a valid cron field`);
      }
      const stepSuffix = step === undefined ? '' : `/${step}`;
      if (range === '*') return `*${stepSuffix}`;
      const bounds = range.split('-');
      if (bounds.length > 2) throw new CronError(`${field.name} '${part}' is not a valid range`);
      const numbers = bounds.map((b) => value(field, b));
      if (numbers.length === 2 && numbers[0] > numbers[1]) throw new CronError(`${field.name} range '${range}' runs backwards`);
      // EventBridge counts days of week 1 (SUN) to 7 (SAT); cron counts 0 (SUN) to 6, and 7 is SUN again.
      const out = field.name === 'day of week' ? numbers.map((n) => (n % 7) + 1) : numbers;
      if (out.length === 2 && out[0] > out[1]) throw new CronError(`${field.name} range '${range}' wraps past Saturday; split it`);
      return `${out.join('-')}${stepSuffix}`;
    })
    .join(',');
}

/** "0 3 * * 0" → "cron(0 3 ? * 1 *)"; throws CronError naming the bad field. */
export function toEventBridgeCron(expression: string): string {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new CronError(`'${expression}' has ${parts.length} fields; expected 5 (minute hour day-of-month month day-of-week)`);
  }
  const [minute, hour, dom, month, dow] = parts.map((p, i) => translate(FIELDS[i], p));
  const domAny = dom === '*';
  const dowAny = dow === '*';
  if (!domAny && !dowAny) {
    throw new CronError(`'${expression}' restricts both day of month and day of week; EventBridge allows only one`);
  }
  return `cron(${minute} ${hour} ${dowAny ? dom : '?'} ${month} ${dowAny ? '?' : dow} *)`;
}

/** The values one field allows: lists, ranges and steps, with the same checks as the translation. */
function allowedValues(field: Field, text: string): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(',')) {
    const [range, step = '1'] = part.split('/');
    const [lo, hi] =
      range === '*' ? [field.min, field.max]
      : range.includes('-') ? range.split('-').map((b) => value(field, b))
      : part.includes('/') ? [value(field, range), field.max] // "5/15": from 5, every 15
      : [value(field, range), value(field, range)];
    for (let v = lo; v <= hi; v += Number(step)) values.add(field.name === 'day of week' ? v % 7 : v);
  }
  return values;
}

/**
 * A predicate telling whether a (UTC) minute is one the cron fires on. Call with an expression
 * that toEventBridgeCron accepts; like EventBridge, a restricted day of month or day of week
 * decides the day (they are never both restricted).
 */
export function cronMatcher(expression: string): (at: Date) => boolean {
  const parts = expression.trim().split(/\s+/);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => allowedValues(FIELDS[i], p));
  const byDayOfWeek = parts[4] !== '*';
  return (at) =>
    minute.has(at.getUTCMinutes()) &&
    hour.has(at.getUTCHours()) &&
    month.has(at.getUTCMonth() + 1) &&
    (byDayOfWeek ? dow.has(at.getUTCDay()) : dom.has(at.getUTCDate()));
}
