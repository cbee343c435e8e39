import type { BackupManifest, RestorePoint } from '../../../repository/manifest';
import type { ObjectStore } from '../../../repository/storage';
import type { ArchiveDescription, ArchiveGap, ArchivePoint, ArchiveRun, ArchiveWindow, ContinuousArchive } from '../../continuous-archive';
import { BinlogArchive } from './binlog-archive';
import { describeGap, type BinlogGap, type BinlogInventory, type BinlogRun } from './inventory';
import { comparePositions, parseBinlogFile } from './names';
import { findDdlEvents } from './replay';
import { streamBinlog } from './streamer';

/** MySQL has one binlog sequence; the "timeline" of the shared shapes is the binlog's base name. */
const timelineOf = (file: string) => parseBinlogFile(file)?.base ?? '';

function endOf(run: BinlogRun): ArchivePoint {
  const last = run.files[run.files.length - 1];
  return { timeline: timelineOf(last.file), time: last.facts?.endTime ?? '', binlog: { file: last.file, position: last.facts?.end ?? 0 } };
}

function gapOf(g: BinlogGap): ArchiveGap {
  return { timeline: timelineOf(g.from), from: g.from, to: g.to, count: g.count };
}


export function describeInventory(inventory: BinlogInventory, objects: number, storedBytes: number): ArchiveDescription | undefined {
  if (inventory.files.length === 0) return undefined;
  const runs: ArchiveRun[] = inventory.runs.map((run) => ({
    timeline: timelineOf(run.files[0].file),
    first: run.files[0].file,
    last: run.files[run.files.length - 1].file,
    end: endOf(run),
    files: run.files.length,
    endsInPartial: !run.files[run.files.length - 1].complete,
  }));
  return { runs, gaps: inventory.gaps.map(gapOf), objects, storedBytes };
}

/** Whether a backup's coordinates lie inside a run (the run can replay from them). */
export function runHolds(run: Pick<ArchiveRun, 'first' | 'end'>, at: { file: string; position: number }): boolean {
  return comparePositions({ file: run.first, position: 0 }, at) <= 0 && comparePositions(at, run.end.binlog!) <= 0;
}

export function binlogOf(backup: BackupManifest): { file: string; position: number } | undefined {
  return backup.restorePoint.binlog;
}

/** MySQL/MariaDB's continuous archive (registration.ts). */
export const mysqlBinlogArchive: ContinuousArchive = {
  stream: (run, options) =>
    streamBinlog(run, {
      spoolDir: options.spoolDir,
      flushSeconds: options.flushSeconds,
      log: options.log,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    }),

  async describe(store: ObjectStore, source: string) {
    const { inventory, objects, storedBytes } = await BinlogArchive.keyless(store, source).inventory();
    return describeInventory(inventory, objects, storedBytes);
  },

  async newestDurablePoint(store, source) {
    const description = await mysqlBinlogArchive.describe(store, source);
    const run = description?.runs[description.runs.length - 1];
    return run?.end.time ? run.end : undefined;
  },

  windows(description, backups: readonly BackupManifest[]): ArchiveWindow[] {
    const windows: ArchiveWindow[] = [];
    for (const run of description.runs) {
      const held = backups.filter((b) => binlogOf(b) && runHolds(run, binlogOf(b)!)).sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time));
      if (held.length === 0 || !run.end.time) continue;
      windows.push({ timeline: run.timeline, from: held[0].restorePoint.time, to: run.end.time > held[held.length - 1].restorePoint.time ? run.end.time : held[held.length - 1].restorePoint.time });
    }
    return windows;
  },

  async ddlEvents(repository, source, { signal }) {
    const events = await findDdlEvents(repository, source, { signal });
    return events.map((e) => ({
      time: e.time,
      position: `${e.file}:${e.position}`,
      kind: e.kind,
      objects: e.kind === 'drop-database' ? [e.database!] : e.tables.map((t) => `${t.database}.${t.table}`),
      statement: e.statement,
    }));
  },

  async verify(repository, source, { from, progress, signal }) {
    const archive = new BinlogArchive(repository, source);
    const { inventory } = await archive.inventory();
    const problems: string[] = [];
    const fromBinlog: RestorePoint['binlog'] = from?.binlog;
    const gaps = inventory.gaps.filter((g) => !fromBinlog || comparePositions({ file: g.to, position: Number.MAX_SAFE_INTEGER }, fromBinlog) >= 0);
    for (const g of gaps) problems.push(describeGap(g));
    for (const name of inventory.unknown) problems.push(`unexpected object in the binlog archive: ${archive.objects.keyOf(name)}`);
    const objects = await archive.objects.list();
    const read = await archive.objects.verifyObjects(
      objects.filter((o) => !inventory.unknown.includes(o.name)),
      { what: 'binlog archive', progress, signal },
    );
    problems.push(...read.problems);
    problems.sort();
    return { ok: problems.length === 0, objects: read.verified, storedBytes: read.storedBytes, gaps: gaps.map(gapOf), problems };
  },
};
