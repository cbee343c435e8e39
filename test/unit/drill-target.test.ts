import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { recordDrill } from '../../lib/core/commands/drill-record';
import { chooseDrillPoint, chooseDrillTarget, newDrillId } from '../../lib/core/commands/drill-target';
import { checkDrillId } from '../../lib/core/drill/scratch';
import { drillReportKey } from '../../lib/core/drill/report';
import { RecoveryTargetOutOfRange } from '../../lib/core/errors';
import { FileStore } from '../../lib/core/repository/file-store';

const T0 = Date.UTC(2026, 0, 1);
const windows = fc
  .tuple(fc.integer({ min: 0, max: 400 * 86400_000 }), fc.integer({ min: 0, max: 60 * 86400_000 }))
  .map(([start, length]) => ({ from: new Date(T0 + start).toISOString(), to: new Date(T0 + start + length).toISOString() }));

describe('chooseDrillPoint', () => {
  it('a random point always lies inside the window, whatever the draw', () => {
    fc.assert(
      fc.property(windows, fc.double({ min: 0, max: 1, noNaN: true }), (window, draw) => {
        const { target, random } = chooseDrillPoint('app', 'random', window, () => draw);
        expect(random).toBe(true);
        expect(Date.parse(target)).toBeGreaterThanOrEqual(Date.parse(window.from));
        expect(Date.parse(target)).toBeLessThanOrEqual(Date.parse(window.to));
      }),
    );
  });

  it('a given time inside the window is taken as is; outside it is refused naming the window', () => {
    fc.assert(
      fc.property(windows, fc.integer({ min: -10 * 86400_000, max: 70 * 86400_000 }), (window, offset) => {
        const at = new Date(Date.parse(window.from) + offset).toISOString();
        const inside = at >= window.from && at <= window.to;
        if (inside) expect(chooseDrillPoint('app', at, window)).toEqual({ target: at, random: false });
        else expect(() => chooseDrillPoint('app', at, window)).toThrow(new RecoveryTargetOutOfRange(`drill of 'app': ${at} is outside the restorable window (${window.from} … ${window.to}); see: tidemark list app`));
      }),
    );
  });

  it('fails when there is nothing to restore, and on a time without a zone', () => {
    expect(() => chooseDrillPoint('app', 'latest', null)).toThrow(/no backup to restore yet/);
    expect(() => chooseDrillPoint('app', 'yesterday', { from: '2026-01-01T00:00:00.000Z', to: '2026-01-02T00:00:00.000Z' })).toThrow(/latest, random or an ISO time/);
  });

  it('drill ids sort by time and are accepted by the worker', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 86400 }), fc.integer({ min: 1, max: 86400 }), (a, d) => {
        const first = newDrillId(new Date(T0 + a * 1000));
        const second = newDrillId(new Date(T0 + (a + d) * 1000));
        expect(first < second).toBe(true);
        expect(checkDrillId(first)).toBe(first);
      }),
    );
  });
});

describe('chooseDrillTarget and recordDrill on a repository', () => {
  let dir: string;
  let store: FileStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tidemark-drill-unit-'));
    store = new FileStore(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('fails when the repository has no backup of the source: nothing to drill', async () => {
    await expect(chooseDrillTarget(store, { app: { engine: 'postgres' } }, { source: 'app', kind: 'restore' })).rejects.toThrow(/no backup to restore yet/);
  });

  it('plans an RDS drill into a tidemark-drill- instance and refuses Aurora clusters', async () => {
    const plan = await chooseDrillTarget(store, { db: { engine: 'postgres', rds: { instance: 'db', securityGroupIds: ['sg-1'] } } }, { source: 'db', kind: 'restore' });
    expect(plan).toMatchObject({ mode: 'rds', target: 'latest', rds: { restore: 'latest', sourceInstance: 'db', securityGroupIds: ['sg-1'] } });
    expect(plan.rds!.instance).toBe(`tidemark-drill-${plan.id.toLowerCase()}`);
    expect(plan.rds!.instance).toMatch(/^[a-z][a-z0-9-]{0,62}$/);
    await expect(chooseDrillTarget(store, { a: { engine: 'postgres', rds: { cluster: 'a' } } }, { source: 'a', kind: 'restore' })).rejects.toThrow(/Aurora/);
  });

  it('an RDS time inside the point-in-time window restores to that time; older without a snapshot is refused', async () => {
    const now = new Date('2026-12-01T07:30:00.000Z');
    const sources = { db: { engine: 'postgres' as const, rds: { instance: 'db', securityGroupIds: [] } } };
    const plan = await chooseDrillTarget(store, sources, { source: 'db', kind: 'manual', at: '2026-11-30T07:30:00Z' }, { now });
    expect(plan.rds).toMatchObject({ restore: 'point-in-time', restoreTime: '2026-11-30T07:30:00.000Z' });
    await expect(chooseDrillTarget(store, sources, { source: 'db', kind: 'manual', at: '2026-11-20T07:30:00Z' }, { now })).rejects.toThrow(/outside the restorable window/);
  });

  it('writes a failed report when the worker left none, and never overwrites one', async () => {
    const drill = { source: 'app', kind: 'restore' as const, id: '20261201T073000Z-abcdef', startedAt: '2026-12-01T07:30:00.000Z', target: 'latest', random: false, mode: 'task' as const, workerCommand: [], cleanupCommand: [] };
    const lines: string[] = [];
    const out = await recordDrill(store, { app: { engine: 'postgres', rtoSeconds: 60 } }, { source: 'app', kind: 'restore', drill, error: { Error: 'States.TaskFailed', Cause: JSON.stringify({ exitCode: null, signal: 'SIGKILL', lastLine: '' }) } }, { write: (l) => lines.push(l) });
    expect(out).toMatchObject({ ok: false, reason: 'States.TaskFailed: killed by SIGKILL' });
    const written = JSON.parse((await store.getBytes(drillReportKey('app', drill.id))).toString());
    expect(written).toMatchObject({ ok: false, error: 'States.TaskFailed: killed by SIGKILL', rtoObjectiveSeconds: 60, cleanedUp: true });
    expect(JSON.parse(lines[0])).toMatchObject({ DrillFailed: 1, Source: 'app' });
    // A second record (a retried Lambda) reads the same report instead of writing another.
    const again = await recordDrill(store, { app: { engine: 'postgres' } }, { source: 'app', kind: 'restore', drill, error: { Error: 'Other' }, cleanupError: {} }, { write: () => undefined });
    expect(again.reason).toBe('States.TaskFailed: killed by SIGKILL');
  });

  it('a passed report with a failed teardown is a failed drill', async () => {
    const drill = { source: 'app', kind: 'restore' as const, id: '20261201T073000Z-000001', startedAt: '2026-12-01T07:30:00.000Z', target: 'latest', random: false, mode: 'task' as const, workerCommand: [], cleanupCommand: [] };
    await store.put(drillReportKey('app', drill.id), Buffer.from(JSON.stringify({ format: 1, id: drill.id, source: 'app', engine: 'postgres', method: 'logical', kind: 'restore', target: { kind: 'latest' }, startedAt: drill.startedAt, finishedAt: drill.startedAt, ok: true, rtoSeconds: 12, rpoSeconds: 3, checks: [], cleanedUp: false })));
    const lines: string[] = [];
    const out = await recordDrill(store, { app: { engine: 'postgres' } }, { source: 'app', kind: 'restore', drill, error: {}, cleanupError: { Error: 'States.Timeout', Cause: 'cleanup timed out' } }, { write: (l) => lines.push(l) });
    expect(out).toMatchObject({ ok: false, rtoSeconds: 12, rpoSeconds: 3, reason: expect.stringContaining('teardown failed') });
    expect(JSON.parse(lines[0])).toMatchObject({ DrillFailed: 1, DrillRtoSeconds: 12, DrillRpoSeconds: 3 });
  });
});
