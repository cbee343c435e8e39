/**
 * The one JSON log shape, for every process that logs for machines (the worker, the Lambdas, the
 * local runner): one object per line, `level` and `msg` first, then the fields, then `time`.
 * CloudWatch Logs Insights queries and the tests read exactly this.
 */
export type LogLevel = 'info' | 'warn' | 'error';
export type LogFields = Readonly<Record<string, unknown>>;

/** One log record as a single line of JSON (newlines inside strings are escaped by JSON). */
export function jsonLine(level: LogLevel, msg: string, fields: LogFields = {}): string {
  return `${JSON.stringify({ level, msg, ...fields, time: new Date().toISOString() })}\n`;
}
