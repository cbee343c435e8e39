import type { ListedBackup, ListResult } from '../../lib/core/commands/list';
import { DRILL_REPORT_FORMAT, type DrillReport } from '../../lib/core/drill/report';
import type { ReportModel, SourceReport } from '../../lib/core/report/model';
import { storageByChain } from '../../lib/core/report/storage';
import type { StoredObjectInfo } from '../../lib/core/repository/storage';

/** Report models written by hand for the renderer's tests (and for looking at the page). */

const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-01T02:00:00.000Z');
const iso = (t: number) => new Date(t).toISOString();
const idAt = (t: number, n: number) => `${iso(t).replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '.$1Z')}-${n.toString(16).padStart(6, '0')}`;

export function backup(type: ListedBackup['type'], startHours: number, extra: Partial<ListedBackup> = {}): ListedBackup {
  const start = T0 + startHours * HOUR;
  return {
    id: idAt(start, Math.round(startHours * 10)),
    type,
    method: type === 'logical' ? 'pg-logical' : 'pg-physical',
    startedAt: iso(start),
    finishedAt: iso(start + 0.3 * HOUR),
    bytes: 4e9,
    storedBytes: 1.2e9,
    restorePoint: iso(start + (type === 'logical' ? 0.01 : 0.3) * HOUR),
    ...extra,
  };
}

export function drill(n: number, extra: Partial<DrillReport> = {}): DrillReport {
  const start = T0 + (24 + n * 48) * HOUR;
  return {
    format: DRILL_REPORT_FORMAT,
    id: idAt(start, 900 + n),
    source: 'app',
    engine: 'postgres',
    method: 'physical',
    kind: n % 3 === 0 ? 'full' : 'restore',
    target: n % 3 === 0 ? { kind: 'time', at: iso(start - 30 * HOUR), random: true } : { kind: 'latest' },
    startedAt: iso(start),
    finishedAt: iso(start + 600_000),
    ok: true,
    rtoSeconds: 300 + ((n * 97) % 200),
    rpoSeconds: 20 + ((n * 31) % 50),
    rtoObjectiveSeconds: 900,
    rpoObjectiveSeconds: 300,
    predictedRtoSeconds: 350 + ((n * 53) % 120),
    checks: [
      { name: 'recorded checksums', ok: true, detail: '12 tables, 1,204,331 rows match' },
      { name: 'pg_amcheck', ok: true, detail: 'no corruption in 57 relations' },
    ],
    cleanedUp: true,
    ...extra,
  };
}

/** A physical chain (full ← diff ← incr), a second full, WAL with a gap, drills one of which failed. */
export function physicalSource(): SourceReport {
  const full1 = backup('full', 0);
  const diff1 = backup('diff', 24, { parent: full1.id, chain: { base: full1.id, depth: 1 } });
  const incr1 = backup('incr', 48, { parent: diff1.id, chain: { base: full1.id, depth: 2 } });
  const full2 = backup('full', 168);
  const incr2 = backup('incr', 192, { parent: full2.id, chain: { base: full2.id, depth: 1 } });
  const backups = [full1, diff1, incr1, full2, incr2];
  const list: ListResult = {
    backups,
    window: { from: full1.restorePoint, to: iso(T0 + 240 * HOUR) },
    incomplete: [],
    problems: [],
    archive: {
      stream: 'wal',
      objects: 310,
      storedBytes: 5.2e9,
      runs: [],
      gaps: [{ timeline: '00000001', from: '000000010000000000000041', to: '000000010000000000000043', count: 3 }],
      windows: [
        { timeline: '00000001', from: full1.restorePoint, to: iso(T0 + 100 * HOUR) },
        { timeline: '00000001', from: iso(T0 + 130 * HOUR), to: iso(T0 + 240 * HOUR) },
      ],
    },
  };
  const objects: StoredObjectInfo[] = [
    ...backups.map((b, i) => ({ key: `app/backups/${b.id}/pack`, size: b.storedBytes, storageClass: i < 3 ? 'GLACIER' : 'STANDARD' })),
    ...backups.map((b, i) => ({ key: `app/backups/${b.id}/manifest.json`, size: 40_000, storageClass: i < 3 ? 'STANDARD_IA' : undefined })),
    { key: 'app/wal/00000001/000000010000000000000001.zst', size: 5.2e9 },
    { key: 'app/drills/x.json', size: 3_000 },
  ];
  const drills = [0, 1, 2, 3, 4, 5, 6].map((n) =>
    n === 4
      ? drill(n, {
          ok: false,
          rtoSeconds: undefined,
          rpoSeconds: undefined,
          error: 'pg_amcheck: index "orders_pkey" is corrupt',
          checks: [{ name: 'pg_amcheck', ok: false, detail: 'btree index "orders_pkey": item order invariant violated' }],
        })
      : n === 5
        ? drill(n, { rtoSeconds: 1100 })
        : drill(n),
  );
  return { name: 'app', engine: 'postgres', rtoObjectiveSeconds: 900, rpoObjectiveSeconds: 300, list, storage: storageByChain('app', backups, objects), drills, drillProblems: [] };
}

/** Nightly logical dumps and no archive: the window is backup points only. */
export function logicalSource(name = 'shop'): SourceReport {
  const backups = [0, 24, 48, 72, 96, 120].map((h) => backup('logical', h, { method: 'mysql-logical' }));
  const list: ListResult = { backups, window: { from: backups[0].restorePoint, to: backups[backups.length - 1].restorePoint }, incomplete: [], problems: [] };
  const objects = backups.map((b) => ({ key: `${name}/backups/${b.id}/dump`, size: b.storedBytes }));
  return { name, engine: 'mysql', list, storage: storageByChain(name, backups, objects), drills: [], drillProblems: [] };
}

export function emptySource(name = 'fresh'): SourceReport {
  return { name, engine: 'postgres', list: { backups: [], window: null, incomplete: [], problems: [] }, storage: { chains: [], archive: {}, other: {} }, drills: [], drillProblems: [] };
}

export function sampleModel(sources: readonly SourceReport[] = [physicalSource(), logicalSource(), emptySource()]): ReportModel {
  return { generatedAt: iso(T0 + 250 * HOUR), repository: 'file:///var/backups/tidemark', sources };
}
