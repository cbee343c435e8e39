/**
 * Binlog file names and the archive's object names for them.
 *
 *   mariadb-bin.000042                   a completed binlog file (the server's own name)
 *   mariadb-bin.000042.partial.000007    generation 7 of the file while it was still being written
 *
 * The server numbers files with at least six digits and keeps counting past 999999.
 */
const FILE = /^([A-Za-z0-9_.-]+?)\.(\d{6,})$/;
const PARTIAL = /^(.+)\.partial\.(\d{6,})$/;

export interface BinlogFileName {
  readonly base: string;
  readonly index: number;
}

export function parseBinlogFile(name: string): BinlogFileName | undefined {
  const m = FILE.exec(name);
  return m ? { base: m[1], index: Number(m[2]) } : undefined;
}

export function binlogFileName(base: string, index: number): string {
  return `${base}.${String(index).padStart(6, '0')}`;
}

/** The file after `name` (the one the server rotates to). */
export function nextBinlogFile(name: string): string {
  const f = parseBinlogFile(name);
  if (!f) throw new Error(`not a binlog file name: ${name}`);
  return binlogFileName(f.base, f.index + 1);
}

/** Six digits, and more past 999999 (a file active for weeks): readers compare the numbers, not the names. */
export function partialName(file: string, generation: number): string {
  if (!Number.isSafeInteger(generation) || generation < 1) throw new Error(`partial generation out of range: ${generation}`);
  return `${file}.partial.${String(generation).padStart(6, '0')}`;
}

export type ArchiveName = { readonly kind: 'file'; readonly file: string; readonly index: number } | { readonly kind: 'partial'; readonly file: string; readonly index: number; readonly generation: number };

/** What an object name below `<source>/binlog/` is, or undefined for anything else. */
export function parseArchiveName(name: string): ArchiveName | undefined {
  const p = PARTIAL.exec(name);
  if (p) {
    const f = parseBinlogFile(p[1]);
    return f ? { kind: 'partial', file: p[1], index: f.index, generation: Number(p[2]) } : undefined;
  }
  const f = parseBinlogFile(name);
  return f ? { kind: 'file', file: name, index: f.index } : undefined;
}

/** Orders binlog coordinates: by file number, then position. */
export function comparePositions(a: { file: string; position: number }, b: { file: string; position: number }): number {
  const fa = parseBinlogFile(a.file)?.index ?? -1;
  const fb = parseBinlogFile(b.file)?.index ?? -1;
  return fa !== fb ? fa - fb : a.position - b.position;
}
