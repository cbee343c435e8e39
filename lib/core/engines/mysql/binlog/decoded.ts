/**
 * Reads what `mariadb-binlog --base64-output=decode-rows` prints (pure: text in, events out):
 * each event starts with `# at <position>` and a header line
 * `#YYMMDD HH:MM:SS server id N  end_log_pos P …  <Type> …` (times in the tool's zone: we run it
 * with TZ=UTC), then for Query events the statements, each ended by the delimiter `/*!*\/;`.
 *
 * Without -v no row values are printed, so no data a user inserted can pose as an event header.
 */
export interface DecodedEvent {
  /** Position of the event's first byte in its file: a --stop-position here excludes it. */
  readonly at: number;
  readonly endPosition: number;
  /** ISO time (whole seconds). */
  readonly time: string;
  readonly type: string;
  /** GTID events: domain-server-sequence. */
  readonly gtid?: string;
  /** Query events: the database in effect (`use`) and the statement. */
  readonly database?: string;
  readonly statement?: string;
}

const AT = /^# at (\d+)$/;
const HEADER = /^#(\d{2})(\d{2})(\d{2})\s+(\d{1,2}):(\d{2}):(\d{2}) server id \d+\s+end_log_pos (\d+)(?:\s+CRC32 0x[0-9a-f]+)?\s+(.*)$/;
const DELIMITER = '/*!*/;';

function isoOf(m: RegExpExecArray): string {
  const [yy, mo, dd, hh, mi, ss] = m.slice(1, 7).map(Number);
  return new Date(Date.UTC(2000 + yy, mo - 1, dd, hh, mi, ss)).toISOString();
}

/** Unquotes `name` (backquotes doubled inside) or returns a bare name as is. */
export function unquoteIdentifier(text: string): string {
  return text.startsWith('`') && text.endsWith('`') && text.length >= 2 ? text.slice(1, -1).replace(/``/g, '`') : text;
}

/** Splits a Query event's body into statements at the delimiter lines mariadb-binlog writes. */
function statementsOf(body: string): string[] {
  return body
    .split(DELIMITER)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Reads decoded output line by line (a file's output can be far larger than memory should hold):
 * `keep` decides which events are kept. `use` carries over between Query events, as in the tool.
 */
export class DecodedBinlogReader {
  readonly events: DecodedEvent[] = [];
  private at: number | undefined;
  private current: { at: number; end: number; time: string; type: string; gtid?: string; body: string[] } | undefined;
  private database: string | undefined;

  constructor(private readonly keep: (event: DecodedEvent) => boolean = () => true) {}

  line(line: string): void {
    const a = AT.exec(line);
    if (a) {
      this.finish();
      this.at = Number(a[1]);
      return;
    }
    const h = this.at !== undefined ? HEADER.exec(line) : null;
    if (h && this.at !== undefined) {
      this.finish();
      const rest = h[8];
      const type = /^(\w+)/.exec(rest)?.[1] ?? rest;
      const gtid = /^GTID (\d+-\d+-\d+)/.exec(rest)?.[1];
      this.current = { at: this.at, end: Number(h[7]), time: isoOf(h), type, ...(gtid ? { gtid } : {}), body: [] };
      this.at = undefined;
      return;
    }
    // Only a Query event's statements are needed; nothing else is held.
    if (this.current?.type === 'Query' && !line.startsWith('#')) this.current.body.push(line);
  }

  end(): DecodedEvent[] {
    this.finish();
    return this.events;
  }

  private finish(): void {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    let event: DecodedEvent = { at: current.at, endPosition: current.end, time: current.time, type: current.type, ...(current.gtid ? { gtid: current.gtid } : {}) };
    if (current.type === 'Query') {
      let statement: string | undefined;
      for (const s of statementsOf(current.body.join('\n'))) {
        const use = /^use (`(?:[^`]|``)*`|\S+)$/i.exec(s);
        if (use) this.database = unquoteIdentifier(use[1]);
        else if (/^SET\s/i.test(s) || s.startsWith('/*!\\C') || /^DELIMITER\s/i.test(s)) continue;
        else statement = s;
      }
      event = { ...event, ...(this.database !== undefined ? { database: this.database } : {}), ...(statement !== undefined ? { statement } : {}) };
    }
    if (this.keep(event)) this.events.push(event);
  }
}

/** Every event of one file's decoded output, in order. */
export function parseDecodedBinlog(text: string): DecodedEvent[] {
  const reader = new DecodedBinlogReader();
  for (const line of text.split('\n')) reader.line(line);
  return reader.end();
}

/** Row-level events: replay needs them, finding targets does not (transactions end with Xid or a Query). */
export const ROW_EVENT_TYPES: ReadonlySet<string> = new Set(['Annotate_rows', 'Table_map', 'Write_rows', 'Update_rows', 'Delete_rows', 'Write_rows_v1', 'Update_rows_v1', 'Delete_rows_v1', 'Rows_query']);

export interface TableName {
  readonly database: string;
  readonly table: string;
}

export type DropKind = 'drop-table' | 'truncate' | 'drop-database';

const IDENT = '(?:`(?:[^`]|``)+`|[\\p{L}\\p{N}_$]+)';
const QUALIFIED = `${IDENT}(?:\\s*\\.\\s*${IDENT})?`;
const LIST = `${QUALIFIED}(?:\\s*,\\s*${QUALIFIED})*`;
const DROP_TABLE = new RegExp(`^DROP\\s+TABLES?\\s+(?:IF\\s+EXISTS\\s+)?(${LIST})(?:\\s+(?:WAIT\\s+\\d+|NOWAIT))?(?:\\s+(?:RESTRICT|CASCADE))?$`, 'iu');
const TRUNCATE = new RegExp(`^TRUNCATE\\s+(?:TABLE\\s+)?(${QUALIFIED})(?:\\s+(?:WAIT\\s+\\d+|NOWAIT))?$`, 'iu');
const DROP_DATABASE = new RegExp(`^DROP\\s+(?:DATABASE|SCHEMA)\\s+(?:IF\\s+EXISTS\\s+)?(${IDENT})$`, 'iu');
const PART = new RegExp(IDENT, 'gu');

/** Plain comments out (the server adds `/* generated by server *\/`); executable comments (`/*!…*\/`) stay. */
function withoutComments(statement: string): string {
  let out = '';
  let i = 0;
  while (i < statement.length) {
    const c = statement[i];
    if (c === '`') {
      const end = closingBackquote(statement, i);
      out += statement.slice(i, end + 1);
      i = end + 1;
    } else if (c === '/' && statement[i + 1] === '*' && statement[i + 2] !== '!') {
      const end = statement.indexOf('*/', i + 2);
      i = end < 0 ? statement.length : end + 2;
      if (!out.endsWith(' ')) out += ' ';
    } else if (/\s/.test(c)) {
      // Whitespace outside names becomes one space; inside backquotes it is part of the name.
      if (!out.endsWith(' ')) out += ' ';
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out.trim();
}

function closingBackquote(s: string, open: number): number {
  let i = open + 1;
  while (i < s.length) {
    if (s[i] === '`') {
      if (s[i + 1] === '`') i += 2;
      else return i;
    } else i++;
  }
  return s.length - 1;
}

function qualified(text: string, database: string | undefined): TableName | undefined {
  const parts = text.match(PART)!.map(unquoteIdentifier);
  if (parts.length === 2) return { database: parts[0], table: parts[1] };
  return database === undefined ? undefined : { database, table: parts[0] };
}

function splitList(list: string): string[] {
  const items: string[] = [];
  let current = '';
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '`') {
      const end = closingBackquote(list, i);
      current += list.slice(i, end + 1);
      i = end;
    } else if (c === ',') {
      items.push(current.trim());
      current = '';
    } else current += c;
  }
  items.push(current.trim());
  return items;
}

/**
 * The tables a statement drops or empties, names resolved against the `use` database; undefined
 * when it is no such statement. DROP TEMPORARY TABLE is not a drop of a table anyone restores.
 */
export function droppedBy(statement: string, database: string | undefined): { kind: DropKind; tables: TableName[]; database?: string } | undefined {
  const s = withoutComments(statement);
  const drop = DROP_TABLE.exec(s);
  if (drop) {
    const tables = splitList(drop[1])
      .map((t) => qualified(t, database))
      .filter((t): t is TableName => t !== undefined);
    return { kind: 'drop-table', tables };
  }
  const truncate = TRUNCATE.exec(s);
  if (truncate) {
    const t = qualified(truncate[1], database);
    return { kind: 'truncate', tables: t ? [t] : [] };
  }
  const dropDb = DROP_DATABASE.exec(s);
  if (dropDb) return { kind: 'drop-database', tables: [], database: unquoteIdentifier(dropDb[1]) };
  return undefined;
}

/** A drop, truncate or database drop found in the archive (list --ddl, --before-drop). */
export interface DdlEvent {
  readonly file: string;
  readonly position: number;
  readonly endPosition: number;
  readonly time: string;
  readonly kind: DropKind;
  readonly tables: readonly TableName[];
  /** drop-database: the database. */
  readonly database?: string;
  readonly statement: string;
}

export function ddlEventsOf(file: string, events: readonly DecodedEvent[]): DdlEvent[] {
  const found: DdlEvent[] = [];
  for (const e of events) {
    if (e.type !== 'Query' || e.statement === undefined) continue;
    const d = droppedBy(e.statement, e.database);
    if (!d) continue;
    found.push({ file, position: e.at, endPosition: e.endPosition, time: e.time, kind: d.kind, tables: d.tables, ...(d.database !== undefined ? { database: d.database } : {}), statement: e.statement });
  }
  return found;
}

/** Parses `db.table` as the CLI takes it (either part may be backquoted). */
export function parseTableArgument(text: string): TableName | undefined {
  const m = new RegExp(`^(${IDENT})\\s*\\.\\s*(${IDENT})$`, 'u').exec(text.trim());
  return m ? { database: unquoteIdentifier(m[1]), table: unquoteIdentifier(m[2]) } : undefined;
}

/** Whether a DDL event removes the rows of `target`. */
export function removes(event: DdlEvent, target: TableName): boolean {
  if (event.kind === 'drop-database') return event.database === target.database;
  return event.tables.some((t) => t.database === target.database && t.table === target.table);
}
