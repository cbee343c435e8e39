import type { ArchiveHeader } from '../../../repository/archive';
import { parseArchiveName } from './names';

/**
 * What the binlog archive holds, worked out from object names and headers (pure): unbroken runs
 * of files, and the gaps between them. A file is complete when it is archived under its own name;
 * while the server was still writing it, only generation-numbered partials exist, the newest
 * reaching furthest. A run ends at a missing file, at a file that has only partials (nothing after
 * it can be replayed across the missing tail), or where the server's identity changes.
 */
export interface BinlogObjectFacts {
  /** The binlog file's length stored (the position it reaches). */
  readonly end: number;
  /** ISO time of its last event. */
  readonly endTime?: string;
  /** server_id (and server_uuid on MySQL) of the server that wrote it. */
  readonly server: string;
}

export function binlogAttributes(facts: BinlogObjectFacts): Record<string, string | number> {
  return { end: facts.end, server: facts.server, ...(facts.endTime ? { endTime: facts.endTime } : {}) };
}

export function factsOf(header: ArchiveHeader): BinlogObjectFacts | undefined {
  const a = header.attributes;
  if (!a || typeof a.end !== 'number' || typeof a.server !== 'string') return undefined;
  return { end: a.end, server: a.server, ...(typeof a.endTime === 'string' ? { endTime: a.endTime } : {}) };
}

export interface InventoryFile {
  readonly file: string;
  readonly index: number;
  /** The object to read for this file: the complete one, else the newest partial. */
  readonly object: string;
  readonly complete: boolean;
  readonly facts?: BinlogObjectFacts;
}

export interface BinlogRun {
  readonly files: readonly InventoryFile[];
}

export interface BinlogGap {
  readonly from: string;
  readonly to: string;
  /** Files missing; 0 where the server's identity changed between two files. */
  readonly count: number;
  readonly reason: 'purged' | 'identity';
}

export interface BinlogInventory {
  readonly files: readonly InventoryFile[];
  readonly runs: readonly BinlogRun[];
  readonly gaps: readonly BinlogGap[];
  /** Partials superseded by a complete file or a newer generation. */
  readonly superseded: readonly string[];
  /** Names that are no binlog object. */
  readonly unknown: readonly string[];
  /** Newest partial generation per file (a streamer continues above it). */
  readonly generations: ReadonlyMap<string, number>;
}

/** The inventory of `names`; `facts(name)` gives an object's header facts where known. */
export function inventoryOf(names: readonly string[], facts: (name: string) => BinlogObjectFacts | undefined = () => undefined): BinlogInventory {
  const byFile = new Map<string, { index: number; complete?: string; partials: { name: string; generation: number }[] }>();
  const unknown: string[] = [];
  for (const name of names) {
    const parsed = parseArchiveName(name);
    if (!parsed) {
      unknown.push(name);
      continue;
    }
    const entry = byFile.get(parsed.file) ?? { index: parsed.index, partials: [] };
    if (parsed.kind === 'file') entry.complete = name;
    else entry.partials.push({ name, generation: parsed.generation });
    byFile.set(parsed.file, entry);
  }
  const superseded: string[] = [];
  const generations = new Map<string, number>();
  const files: InventoryFile[] = [];
  for (const [file, entry] of [...byFile.entries()].sort((a, b) => a[1].index - b[1].index || a[0].localeCompare(b[0]))) {
    const partials = entry.partials.sort((a, b) => a.generation - b.generation);
    if (partials.length > 0) generations.set(file, partials[partials.length - 1].generation);
    const newest = partials[partials.length - 1];
    const object = entry.complete ?? newest.name;
    superseded.push(...partials.filter((p) => p.name !== object).map((p) => p.name));
    const f = facts(object);
    files.push({ file, index: entry.index, object, complete: entry.complete !== undefined, ...(f ? { facts: f } : {}) });
  }

  const runs: BinlogRun[] = [];
  const gaps: BinlogGap[] = [];
  let run: InventoryFile[] = [];
  for (const f of files) {
    const previous = run[run.length - 1];
    if (previous) {
      const missing = f.index - previous.index - 1;
      const identityChanged = previous.facts && f.facts && previous.facts.server !== f.facts.server;
      if (missing > 0 || !previous.complete || identityChanged) {
        if (missing > 0 || !previous.complete) {
          // A file archived only in part is missing its tail: it counts with the files missing after it.
          const from = previous.complete ? nameAt(previous.file, previous.index + 1) : previous.file;
          gaps.push({ from, to: nameAt(previous.file, f.index - 1), count: missing + (previous.complete ? 0 : 1), reason: 'purged' });
        } else gaps.push({ from: previous.file, to: f.file, count: 0, reason: 'identity' });
        runs.push({ files: run });
        run = [];
      }
    }
    run.push(f);
  }
  if (run.length > 0) runs.push({ files: run });
  return { files, runs, gaps, superseded, unknown, generations };
}

function nameAt(sibling: string, index: number): string {
  const base = sibling.replace(/\.\d+$/, '');
  return `${base}.${String(index).padStart(6, '0')}`;
}

/** One line per gap, for logs, list and verify. */
export function describeGap(g: BinlogGap): string {
  if (g.reason === 'identity') return `binlog gap: the server changed between ${g.from} and ${g.to} (another server_id/server_uuid)`;
  if (g.from === g.to) return `binlog gap: ${g.from} is missing${g.count === 1 ? ' (or only its beginning was archived)' : ''}`;
  return `binlog gap: ${g.from} to ${g.to} (${g.count} files) are missing`;
}
