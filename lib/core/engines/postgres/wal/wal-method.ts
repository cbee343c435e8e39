import type { BackupManifest } from '../../../repository/manifest';
import type { ObjectStore } from '../../../repository/storage';
import type { ArchiveDdlEvent, ArchiveDescription, ArchiveGap, ArchiveRun, ArchiveWindow, ContinuousArchive } from '../../continuous-archive';
import { pgBin } from '../tools';
import { WalArchive } from './wal-archive';
import { scanWalDdl } from './wal-ddl-scan';
import type { WalInventory } from './wal-inventory';
import { parseLsn, parseSegmentName, segmentOfLsn } from './wal-names';
import { slotNameFor, streamWal } from './wal-streamer';


function gapsOf(inventory: WalInventory): ArchiveGap[] {
  return inventory.timelines.flatMap((t) => t.gaps.map((g) => ({ ...g })));
}

async function describe(archive: WalArchive): Promise<ArchiveDescription | undefined> {
  const objects = await archive.list();
  const inventory = await archive.inventory(objects);
  if (!inventory) return undefined;
  const runs: ArchiveRun[] = [];
  // A timeline's first run that continues its parent's run (across the switch) replays from where that one starts.
  const replayFrom = new Map<string, string>();
  for (const timeline of inventory.timelines) {
    for (const [index, run] of timeline.runs.entries()) {
      const end = await archive.endOf(run);
      const parent = index === 0 && timeline.continues ? replayFrom.get(`${timeline.continues.timeline}/${timeline.continues.run}`) : undefined;
      replayFrom.set(`${timeline.timeline}/${index}`, parent ?? run.startLsn);
      runs.push({
        timeline: run.timeline,
        first: run.first,
        last: run.last,
        startLsn: run.startLsn,
        ...(parent ? { replayFromLsn: parent } : {}),
        end: { timeline: end.timeline, time: end.time, lsn: end.lsn },
        files: run.segments,
        endsInPartial: run.partial !== undefined,
      });
    }
  }
  return { runs, gaps: gapsOf(inventory), objects: objects.length, storedBytes: objects.reduce((n, o) => n + o.storedBytes, 0) };
}

const lsnIn = (lsn: string | undefined, from: string | undefined, to: string | undefined) =>
  lsn !== undefined && from !== undefined && to !== undefined && parseLsn(from) <= parseLsn(lsn) && parseLsn(lsn) <= parseLsn(to);

/** PostgreSQL's continuous archive (registration.ts). */
export const pgWalArchive: ContinuousArchive = {
  stream: (run, options) =>
    streamWal(run, {
      spoolDir: options.spoolDir,
      slot: options.slot ?? slotNameFor(run.source),
      flushSeconds: options.flushSeconds,
      log: options.log,
      ...(options.metrics ? { metrics: options.metrics } : {}),
    }),

  describe: (store: ObjectStore, source: string) => describe(WalArchive.keyless(store, source)),

  async newestDurablePoint(store, source) {
    const point = await WalArchive.keyless(store, source).newestDurablePoint();
    return point && { timeline: point.timeline, time: point.time, lsn: point.lsn };
  },

  windows(description, backups: readonly BackupManifest[]): ArchiveWindow[] {
    const windows: ArchiveWindow[] = [];
    for (const run of description.runs) {
      const held = backups.filter((b) => lsnIn(b.restorePoint.lsn, run.replayFromLsn ?? run.startLsn, run.end.lsn)).sort((a, b) => a.restorePoint.time.localeCompare(b.restorePoint.time));
      if (held.length === 0 || !run.end.time) continue;
      windows.push({ timeline: run.timeline, from: held[0].restorePoint.time, to: run.end.time, fromLsn: held[0].restorePoint.lsn, toLsn: run.end.lsn });
    }
    return windows;
  },

  /**
   * Drops and truncates in every run of the archive (reads and authenticates all of it). The WAL
   * knows relations by oid only; `restore --before-drop schema.table` finds the name in the catalog.
   */
  async ddlEvents(repository, source, { signal }) {
    const archive = new WalArchive(repository, source);
    const inventory = await archive.inventory();
    if (!inventory) return [];
    const waldump = pgBin('pg_waldump');
    const events: ArchiveDdlEvent[] = [];
    for (const timeline of inventory.timelines) {
      for (const run of timeline.runs) {
        const commits = await scanWalDdl(archive, { first: run.first, last: run.last, segmentBytes: inventory.segmentBytes, waldump, signal });
        for (const c of commits) {
          events.push({
            time: c.time,
            position: `${c.lsn} (timeline ${parseInt(timeline.timeline, 16)}, xid ${c.xid})`,
            kind: c.kind === 'drop' ? 'DROP' : 'TRUNCATE or rewrite',
            objects:
              c.kind === 'drop'
                ? c.droppedRelations.map((d) => `relation oid ${d.oid} (database oid ${d.database})`)
                : c.files.map((f) => `relfilenode ${f.relfilenode} (database oid ${f.database})`),
            statement: `commit of transaction ${c.xid}`,
          });
        }
      }
    }
    return events;
  },

  async verify(repository, source, { from, progress, signal }) {
    const archive = new WalArchive(repository, source);
    const objects = await archive.list();
    const inventory = await archive.inventory(objects);
    const problems: string[] = [];
    let gaps: ArchiveGap[] = [];
    if (inventory) {
      const fromSegno = from?.lsn ? segmentOfLsn(parseLsn(from.lsn), inventory.segmentBytes) : -1;
      gaps = gapsOf(inventory).filter((g) => parseSegmentName(g.to, inventory.segmentBytes).segno >= fromSegno);
      for (const g of gaps) problems.push(`WAL gap on timeline ${g.timeline}: ${g.count === 1 ? `segment ${g.from} is` : `segments ${g.from} to ${g.to} (${g.count}) are`} missing`);
      for (const name of inventory.unknown) problems.push(`unexpected object in the WAL archive: ${archive.objects.keyOf(name)}`);
    }
    const read = await archive.objects.verifyObjects(objects, { what: 'WAL archive', progress, signal });
    problems.push(...read.problems);
    problems.sort();
    return { ok: problems.length === 0, objects: read.verified, storedBytes: read.storedBytes, gaps, problems };
  },
};
