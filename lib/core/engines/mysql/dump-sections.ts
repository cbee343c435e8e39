/**
 * Cuts a mysqldump / mariadb-dump SQL stream (as our backups write it: comments on, extended
 * inserts, --triggers --routines --events, no --databases) into pieces that several connections can
 * replay, each piece marked with what it must wait for (parallel-load.ts schedules them).
 *
 * The dump tool's own section comments are the seams:
 *
 *   --
 *   -- Table structure for table `t`        → schema of t (DROP/CREATE TABLE)
 *   -- Dumping data for table `t`           → LOCK TABLES, DISABLE KEYS, INSERT…, ENABLE KEYS, UNLOCK TABLES, triggers
 *   -- Temporary table structure for view `v` (MySQL: …view structure…) → a stand-in view
 *   -- Dumping events / routines for database 'd'
 *   -- Final view structure for view `v`
 *   --
 *
 * What comes before the first of them (SET NAMES, TIME_ZONE, FOREIGN_KEY_CHECKS=0, UNIQUE_CHECKS=0,
 * SQL_MODE, SQL_NOTES) is the session header that every connection replays. Each section restores
 * the session variables it changes, so any section can run on any connection after the header.
 *
 * Only the INSERT statements are looked at as data, and cheaply: the dump tools escape line breaks
 * inside values (\n), so a statement's rows end at the first ");\n" (one memchr-like search per
 * ~1 MiB statement, no parsing of values). Everything else is read line by line; it is small.
 * Section comments count only between statements and with the plain ';' delimiter, and only when
 * the next statement is the one that section starts with (DROP TABLE IF EXISTS `t`, LOCK TABLES/INSERT
 * INTO `t`…), so a routine or trigger body that quotes such a comment is not mistaken for one.
 *
 * LOCK TABLES/UNLOCK TABLES around a table's rows are left out: a WRITE lock held by one connection
 * would stop the others from loading the same table. (They only speed up MyISAM loads; InnoDB's rows
 * commit statement by statement under autocommit either way.)
 */

/** What a piece must wait for before it runs, and where. */
export type DumpPieceKind =
  /** The session header: replayed first on every connection. */
  | 'header'
  /** A table's definition (and DISABLE KEYS): before any of its rows, anywhere. */
  | 'schema'
  /** One INSERT statement: after its table's schema, on any connection, in any order. */
  | 'rows'
  /** ENABLE KEYS, the table's triggers: after every row of the table (a trigger must not fire on them). */
  | 'table-end'
  /** A stand-in view: anywhere, any time before the final views. */
  | 'any'
  /** Events, routines, final views, the trailer: after everything before them, in order, on one connection. */
  | 'last';

export interface DumpPiece {
  readonly kind: DumpPieceKind;
  /** The table of schema, rows and table-end pieces. */
  readonly table?: string;
  /** The piece's bytes: slices of the input, written in order. */
  readonly parts: readonly Buffer[];
  readonly bytes: number;
  /** Ends inside a statement (a long ordered tail cut for memory's sake): the next piece continues it. */
  readonly open?: boolean;
}

type Section =
  | { readonly kind: 'header' }
  | { readonly kind: 'schema'; readonly table: string }
  | { readonly kind: 'data'; readonly table: string; rowsSeen: boolean }
  | { readonly kind: 'any' }
  | { readonly kind: 'last' };

const NL = 0x0a;
const ROWS_END = Buffer.from(');\n');
/** An ordered tail is handed on in pieces of about this size, so it is never held whole. */
const TAIL_PIECE_BYTES = 1024 * 1024;
/** Enough of a line to classify it (a title names a table of ≤ 64 characters, quoted). */
const HEAD_BYTES = 1024;

/** The line (with its \n) ends with the delimiter, trailing blanks aside. */
function endsWithDelimiter(line: Buffer, delimiter: string): boolean {
  let end = line.length;
  while (end > 0 && (line[end - 1] === 0x0a || line[end - 1] === 0x0d || line[end - 1] === 0x20 || line[end - 1] === 0x09)) end--;
  return line.toString('latin1', Math.max(0, end - delimiter.length), end) === delimiter;
}

/** `-- Table structure for table \`t\``: the title's kind and the quoted name (backquotes doubled inside). */
const TITLE = /^-- (Table structure for table|Dumping data for table|Temporary table structure for view|Temporary view structure for view|Final view structure for view|Dumping events for database|Dumping routines for database) (`(?:[^`]|``)*`|'.*')\s*$/;

function unquote(name: string): string {
  return name.slice(1, -1).replace(/``/g, '`');
}

/** Splits the dump as it streams: push() chunks, end() at end of input; each returns the pieces completed. */
export class DumpSplitter {
  private section: Section = { kind: 'header' };
  /** Parts of the piece being built (line mode), or of the INSERT statement being read (rows mode). */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** An incomplete line carried over to the next chunk (line mode). */
  private carry: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  /** In rows mode: reading an INSERT statement until ");\n". */
  private inRows = false;
  /** The last bytes of the statement read so far, to find ");\n" across chunk boundaries. */
  private rowsTail: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  private delimiter = ';';
  /** A statement has begun and not yet ended with the delimiter (line mode). */
  private inStatement = false;
  /** A title seen; its section starts only if the next statement is the expected one. */
  private pendingTitle?: { kind: string; name: string; lines: Buffer[] };
  private out: DumpPiece[] = [];
  private ended = false;

  push(chunk: Buffer): DumpPiece[] {
    let at = 0;
    while (at < chunk.length) at = this.inRows ? this.readRows(chunk, at) : this.readLines(chunk, at);
    return this.take();
  }

  end(): DumpPiece[] {
    if (this.ended) return [];
    this.ended = true;
    if (this.inRows) {
      // A dump cut inside an INSERT: hand it on as it is; the client reports the broken statement.
      this.flushRows();
    }
    if (this.carry.length > 0) this.line(this.carry);
    this.carry = Buffer.alloc(0);
    this.resolveTitle();
    this.emitSection();
    return this.take();
  }

  private take(): DumpPiece[] {
    const out = this.out;
    this.out = [];
    return out;
  }

  private readLines(chunk: Buffer, from: number): number {
    let start = from;
    while (start < chunk.length && !this.inRows) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) {
        this.carry = this.carry.length ? Buffer.concat([this.carry, chunk.subarray(start)]) : Buffer.from(chunk.subarray(start));
        return chunk.length;
      }
      let line = chunk.subarray(start, nl + 1);
      if (this.carry.length) {
        line = Buffer.concat([this.carry, line]);
        this.carry = Buffer.alloc(0);
      }
      start = nl + 1;
      this.line(line);
    }
    return start;
  }

  /** One whole line (with its \n, except maybe at end of input) in line mode. */
  private line(line: Buffer): void {
    // Only a line's start is classified (a MySQL INSERT is one line of ~1 MiB); its end by bytes.
    const text = line.toString('latin1', 0, Math.min(line.length, HEAD_BYTES)).replace(/\r?\n$/, '');
    // Comments, and MariaDB's sandbox-mode line, which the client reads as a command.
    const comment = text === '--' || text.startsWith('-- ') || text.startsWith('#') || text.startsWith('/*M!');
    if (!this.inStatement && this.delimiter === ';' && text.startsWith('-- ')) {
      const title = TITLE.exec(text);
      if (title) {
        this.resolveTitle();
        this.pendingTitle = { kind: title[1], name: unquote(title[2]), lines: [line] };
        return;
      }
    }
    if (this.pendingTitle) {
      if (comment || text.trim() === '') {
        this.pendingTitle.lines.push(line);
        return;
      }
      this.resolveTitle(text);
    }
    if (!this.inStatement) {
      const delimiter = /^DELIMITER\s+(\S+)\s*$/i.exec(text);
      if (delimiter) {
        this.delimiter = delimiter[1];
        this.add(line);
        return;
      }
    }
    const section = this.section;
    if (section.kind === 'header' && !comment && !this.inStatement && text.trim() !== '' && !/^(\/\*!\d+ )?SET /i.test(text)) {
      // Not the session header we know: replaying it on every connection could run it several
      // times, so the whole dump goes through one connection, in order.
      this.section = { kind: 'last' };
    }
    if (section.kind === 'data' && !this.inStatement && this.delimiter === ';') {
      if (/^(UN)?LOCK TABLES\b/.test(text)) return; // see the file comment
      if ((text.startsWith('INSERT INTO ') || text.startsWith('REPLACE INTO ')) && section.rowsSeen && this.parts.length > 0) {
        // Something between a table's INSERTs that we do not know: from here on, in order.
        this.section = { kind: 'last' };
      } else if (text.startsWith('INSERT INTO ') || text.startsWith('REPLACE INTO ')) {
        if (!section.rowsSeen) {
          this.emitSection(); // the table's schema with DISABLE KEYS; rows follow
          section.rowsSeen = true;
        }
        this.inRows = true;
        this.rowsTail = Buffer.alloc(0);
        this.parts = [];
        this.partBytes = 0;
        // The statement may end on this very line (MySQL writes all rows on one).
        this.rowsPart(line);
        return;
      }
    }
    if (!comment && text.trim() !== '') this.inStatement = !endsWithDelimiter(line, this.delimiter);
    this.add(line);
    if (this.section.kind === 'last' && this.partBytes >= TAIL_PIECE_BYTES) this.emitSection();
  }

  /**
   * A title counts only if the statement after it is the one its section starts with; otherwise
   * its lines are ordinary comments of the current section.
   */
  private resolveTitle(next?: string): void {
    const title = this.pendingTitle;
    if (!title) return;
    this.pendingTitle = undefined;
    const q = '`' + title.name.replace(/`/g, '``') + '`';
    let section: Section | undefined;
    switch (title.kind) {
      case 'Table structure for table':
        if (next === undefined || next.startsWith(`DROP TABLE IF EXISTS ${q}`) || next.includes(`CREATE TABLE ${q}`)) section = { kind: 'schema', table: title.name };
        break;
      case 'Dumping data for table':
        if (this.section.kind === 'schema' && this.section.table === title.name) section = { kind: 'data', table: title.name, rowsSeen: false };
        break;
      case 'Temporary table structure for view':
      case 'Temporary view structure for view':
        section = { kind: 'any' };
        break;
      default:
        // Events, routines, final views: the ordered tail of the dump.
        section = { kind: 'last' };
    }
    if (!section) {
      for (const l of title.lines) this.add(l);
      return;
    }
    if (this.section.kind === 'last') {
      // Once in the ordered tail, everything stays there, in order.
      for (const l of title.lines) this.add(l);
      return;
    }
    if (section.kind === 'data') {
      // Same table: DISABLE KEYS and rows follow its schema; the schema piece is emitted at the first INSERT.
      this.section = section;
    } else {
      this.emitSection();
      this.section = section;
    }
    for (const l of title.lines) this.add(l);
  }

  private add(line: Buffer): void {
    this.parts.push(line);
    this.partBytes += line.length;
  }

  /** Emits what was collected for the current section (line mode) as one piece. */
  private emitSection(): void {
    if (this.parts.length === 0) return;
    const s = this.section;
    const piece: DumpPiece =
      s.kind === 'header'
        ? { kind: 'header', parts: this.parts, bytes: this.partBytes }
        : s.kind === 'schema'
          ? { kind: 'schema', table: s.table, parts: this.parts, bytes: this.partBytes }
          : s.kind === 'data'
            ? { kind: s.rowsSeen ? 'table-end' : 'schema', table: s.table, parts: this.parts, bytes: this.partBytes }
            : { kind: s.kind, parts: this.parts, bytes: this.partBytes, ...(this.inStatement || this.delimiter !== ';' ? { open: true } : {}) };
    this.out.push(piece);
    this.parts = [];
    this.partBytes = 0;
  }

  /** The INSERT's first line (whole): MySQL's ends the statement, MariaDB's is "INSERT INTO `t` VALUES". */
  private rowsPart(line: Buffer): void {
    this.parts.push(line);
    this.partBytes += line.length;
    if (line.indexOf(ROWS_END) >= 0) {
      this.flushRows();
      return;
    }
    this.rowsTail = line.subarray(Math.max(0, line.length - (ROWS_END.length - 1)));
  }

  private readRows(chunk: Buffer, from: number): number {
    // ");\n" split across the previous part and this chunk.
    if (this.rowsTail.length > 0) {
      const joined = Buffer.concat([this.rowsTail, chunk.subarray(from, from + ROWS_END.length - 1)]);
      const j = joined.indexOf(ROWS_END);
      if (j >= 0) {
        const end = from + (j + ROWS_END.length - this.rowsTail.length);
        this.parts.push(chunk.subarray(from, end));
        this.partBytes += end - from;
        this.flushRows();
        return end;
      }
    }
    const k = chunk.indexOf(ROWS_END, from);
    if (k < 0) {
      const part = chunk.subarray(from);
      this.parts.push(part);
      this.partBytes += part.length;
      const keep = ROWS_END.length - 1;
      this.rowsTail = part.length >= keep ? part.subarray(part.length - keep) : Buffer.concat([this.rowsTail, part]).subarray(-keep);
      return chunk.length;
    }
    const end = k + ROWS_END.length;
    this.parts.push(chunk.subarray(from, end));
    this.partBytes += end - from;
    this.flushRows();
    return end;
  }

  private flushRows(): void {
    const s = this.section as Extract<Section, { kind: 'data' }>;
    this.out.push({ kind: 'rows', table: s.table, parts: this.parts, bytes: this.partBytes });
    this.parts = [];
    this.partBytes = 0;
    this.inRows = false;
    this.rowsTail = Buffer.alloc(0);
  }
}
