import type { LongTermPolicy } from '../config/retention';

/** Calendar periods of the long-term (GFS) keeps, in UTC, as sortable keys and ordinals. */
export type LongTermClass = keyof LongTermPolicy;
export const LONG_TERM_CLASSES: readonly LongTermClass[] = ['daily', 'weekly', 'monthly', 'yearly'];

const DAY = 86_400_000;
// 1970-01-05 was a Monday: ISO weeks count from there.
const FIRST_MONDAY = Date.UTC(1970, 0, 5);

/** The period's ordinal: consecutive periods differ by 1. */
export function periodOf(cls: LongTermClass, time: string | number): number {
  const t = typeof time === 'number' ? time : Date.parse(time);
  const d = new Date(t);
  switch (cls) {
    case 'daily':
      return Math.floor(t / DAY);
    case 'weekly':
      return Math.floor((t - FIRST_MONDAY) / (7 * DAY));
    case 'monthly':
      return d.getUTCFullYear() * 12 + d.getUTCMonth();
    case 'yearly':
      return d.getUTCFullYear();
  }
}

/** When period `ordinal` begins (ms since the epoch). */
export function periodStart(cls: LongTermClass, ordinal: number): number {
  switch (cls) {
    case 'daily':
      return ordinal * DAY;
    case 'weekly':
      return FIRST_MONDAY + ordinal * 7 * DAY;
    case 'monthly':
      return Date.UTC(Math.floor(ordinal / 12), ordinal % 12, 1);
    case 'yearly':
      return Date.UTC(ordinal, 0, 1);
  }
}

/** For messages: 2026-11-30, week of 2026-11-30, 2026-11, 2026. */
export function periodLabel(cls: LongTermClass, ordinal: number): string {
  const iso = new Date(periodStart(cls, ordinal)).toISOString();
  switch (cls) {
    case 'daily':
      return iso.slice(0, 10);
    case 'weekly':
      return `week of ${iso.slice(0, 10)}`;
    case 'monthly':
      return iso.slice(0, 7);
    case 'yearly':
      return iso.slice(0, 4);
  }
}
