const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB": for messages and progress lines. */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${UNITS[u]}`;
}

/**
 * A value the user typed, for a message: as typed when it is short and printable, else quoted as
 * JSON (control characters escaped) and cut to `max` characters, so a pasted file or a stray
 * newline cannot turn a one-line error into a screenful.
 */
export function echoInput(value: string, max = 80): string {
  if (value.length <= max && !/[\u0000-\u001f\u007f\u2028\u2029]/.test(value)) return value;
  const quoted = JSON.stringify(value.slice(0, max));
  return value.length > max ? `${quoted.slice(0, -1)}…"` : quoted;
}
