/** Durations in the config read like people say them: "90s", "5m", "1h", "26h", "7d". */
const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

export const DURATION = /^(\d+)(s|m|h|d)$/;

export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`'${text}' is not a duration (e.g. 90s, 5m, 1h, 7d)`);
  return Number(m[1]) * UNIT_SECONDS[m[2]];
}

/** 300 → "5m", 5400 → "90m", 90 → "90s": the largest unit that divides evenly. */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    if (seconds % UNIT_SECONDS[unit] === 0 && seconds >= UNIT_SECONDS[unit]) return `${seconds / UNIT_SECONDS[unit]}${unit}`;
  }
  return `${seconds}s`;
}
