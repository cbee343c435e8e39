/**
 * The few helpers every part of the report renders with. Everything that reaches the page from the
 * repository or the config (source names, backup ids, check details, SQL in assertion names, error
 * lines) goes through `esc`: a drill report is data someone else wrote, never markup.
 */

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe inside an element and inside a quoted attribute value. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A number for SVG coordinates: short, finite, never "NaN" in the markup. */
export function num(n: number): string {
  if (!Number.isFinite(n)) return '0';
  return String(Math.round(n * 10) / 10);
}

/** "2026-12-01 07:30:15 UTC": readable, unambiguous, the same wherever the page is opened, and to the second, as restore targets are. */
export function formatTime(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** 45 → "45 s", 400 → "6.7 min", 7200 → "2 h", 3 days → "3 d": durations of restores and ages of points. */
export function formatSeconds(seconds: number): string {
  const s = Math.abs(seconds);
  const sign = seconds < 0 ? '−' : '';
  const short = (v: number) => (v >= 10 ? String(Math.round(v)) : String(Math.round(v * 10) / 10));
  if (s < 60) return `${sign}${short(s)} s`;
  if (s < 3600) return `${sign}${short(s / 60)} min`;
  if (s < 86400 * 2) return `${sign}${short(s / 3600)} h`;
  return `${sign}${short(s / 86400)} d`;
}

/** "$0.0042" below a cent, "$13.80" above: small repositories still show a cost, not "$0.00". */
export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  if (usd < 0.0001) return '<$0.0001';
  if (usd < 0.01) return `$${usd.toPrecision(2)}`;
  return `$${usd.toFixed(2)}`;
}
