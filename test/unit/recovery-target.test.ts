import fc from 'fast-check';
import { assertTimeInWindow, parseRecoveryTarget, type RecoveryTargetOptions } from '../../lib/core/engines/recovery-target';
import { selectBackup } from '../../lib/core/engines/select-backup';
import { restorableWindow } from '../../lib/core/engines/window';
import { BackupNotFound, IntegrityError, RecoveryTargetOutOfRange, UsageError } from '../../lib/core/errors';
import type { Catalog } from '../../lib/core/repository/catalog';
import type { BackupManifest } from '../../lib/core/repository/manifest';
import { TEST_PG_LOGICAL_DETAILS } from '../harness/details';

const ID = '20261124T075740.123Z-3f9a1c';

describe('parseRecoveryTarget', () => {
  it('defaults to the latest point, and reads each kind of target', () => {
    expect(parseRecoveryTarget({})).toEqual({ kind: 'latest' });
    expect(parseRecoveryTarget({ latest: true })).toEqual({ kind: 'latest' });
    expect(parseRecoveryTarget({ backup: ID })).toEqual({ kind: 'backup', id: ID });
    expect(parseRecoveryTarget({ time: '2026-12-01 03:14:00+01:00' })).toEqual({ kind: 'time', at: '2026-12-01T02:14:00.000Z' });
    // Finer than milliseconds (PostgreSQL commit times): kept for the engine, compared at milliseconds.
    expect(parseRecoveryTarget({ time: '2026-12-01 03:14:00.1234567+01:00' })).toEqual({
      kind: 'time',
      at: '2026-12-01T02:14:00.123Z',
      exact: '2026-12-01T02:14:00.123456Z',
    });
    expect(parseRecoveryTarget({ lsn: '0/1a2b3c' })).toEqual({ kind: 'lsn', lsn: '0/1A2B3C' });
    expect(parseRecoveryTarget({ xid: '4711' })).toEqual({ kind: 'xid', xid: '4711' });
    expect(parseRecoveryTarget({ position: 'mariadb-bin.000042:1337' })).toEqual({ kind: 'binlog', file: 'mariadb-bin.000042', position: 1337 });
    expect(parseRecoveryTarget({ gtid: '0-1-42' })).toEqual({ kind: 'gtid', set: '0-1-42' });
    expect(parseRecoveryTarget({ beforeDrop: 'public.orders' })).toEqual({ kind: 'before-drop', table: 'public.orders' });
  });

  it('fails when a value is malformed, naming the flag and the expected form', () => {
    expect(() => parseRecoveryTarget({ time: '2026-12-01 03:14' })).toThrow(new UsageError('--time 2026-12-01 03:14: expected an ISO time with a zone, e.g. 2026-12-01T02:14:00Z or 2026-12-01 03:14:00+01:00'));
    expect(() => parseRecoveryTarget({ lsn: '1A2B' })).toThrow(/^--lsn 1A2B: expected a WAL position/);
    expect(() => parseRecoveryTarget({ position: 'bin.000001' })).toThrow(/^--position bin.000001: expected binlog-file:position/);
    expect(() => parseRecoveryTarget({ backup: 'yesterday' })).toThrow(/'yesterday' is not a backup id/);
  });

  it('fails when more than one target is given, whichever two', () => {
    const one: fc.Arbitrary<RecoveryTargetOptions> = fc.oneof(
      fc.constant({ latest: true }),
      fc.constant({ backup: ID }),
      fc.constant({ time: '2026-12-01T00:00:00Z' }),
      fc.constant({ lsn: '0/1' }),
      fc.constant({ xid: '1' }),
      fc.constant({ position: 'b.1:4' }),
      fc.constant({ gtid: '0-1-1' }),
      fc.constant({ beforeDrop: 't' }),
    );
    fc.assert(
      fc.property(one, one, (a, b) => {
        fc.pre(Object.keys(a)[0] !== Object.keys(b)[0]);
        expect(() => parseRecoveryTarget({ ...a, ...b })).toThrow(/^choose one recovery target, not --[\w-]+ and --[\w-]+$/);
      }),
    );
  });

  it('accepts every ISO time with an offset and normalizes it to UTC', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('2000-01-01'), max: new Date('2099-12-31'), noInvalidDate: true }), fc.integer({ min: -12, max: 14 }), (d, hours) => {
        const shifted = new Date(d.getTime() + hours * 3_600_000);
        const local = shifted.toISOString().replace('Z', '').slice(0, 23);
        const offset = `${hours < 0 ? '-' : '+'}${String(Math.abs(hours)).padStart(2, '0')}:00`;
        const target = parseRecoveryTarget({ time: `${local}${offset}` });
        expect(target).toEqual({ kind: 'time', at: new Date(Math.floor(d.getTime())).toISOString() });
      }),
    );
  });
});

function manifest(id: string, time: string, kind: 'pg-logical' | 'rds-snapshot' = 'pg-logical'): BackupManifest {
  return {
    format: 'tidemark.backup',
    version: 2,
    id,
    source: 'app',
    engine: 'postgres',
    type: kind === 'pg-logical' ? 'logical' : 'full',
    startedAt: time,
    finishedAt: time,
    restorePoint: { time },
    encryption: { algorithm: 'x', context: {}, dataKey: { provider: 'kms', keyId: 'k', ciphertext: 'c' } },
    objects: [],
    plainBytes: 0,
    storedBytes: 0,
    details:
      kind === 'pg-logical'
        ? TEST_PG_LOGICAL_DETAILS
        : { kind: 'rds-snapshot', snapshotArn: 'arn:aws:rds:x', snapshotIdentifier: 's', region: 'eu-west-1', encrypted: true },
  };
}

const logical = { summary: 'logical (pg_dump)', accepts: (m: BackupManifest) => m.details.kind === 'pg-logical' };

describe('selectBackup and the restorable window', () => {
  const catalogOf = (backups: BackupManifest[], extra: Partial<Catalog> = {}): Catalog => ({ backups, incomplete: [], problems: [], ...extra });

  it('the window spans the backups, and a time inside it lands on the newest backup at or before it', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1.7e12, max: 1.8e12 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 11 }), (times, pick) => {
        const sorted = [...times].sort((a, b) => a - b);
        const backups = sorted.map((t, i) => manifest(`backup-${i}`, new Date(t).toISOString()));
        const window = restorableWindow(backups)!;
        expect(window).toEqual({ from: backups[0].restorePoint.time, to: backups[backups.length - 1].restorePoint.time });
        const chosen = backups[pick % backups.length];
        expect(selectBackup(catalogOf(backups), { kind: 'time', at: chosen.restorePoint.time }, 'app', logical)).toBe(chosen);
        expect(selectBackup(catalogOf(backups), { kind: 'latest' }, 'app', logical)).toBe(backups[backups.length - 1]);
      }),
    );
  });

  it('fails when the time is outside the window, naming the window', () => {
    const backups = [manifest(ID, '2026-11-24T07:57:40.123Z')];
    expect(() => selectBackup(catalogOf(backups), { kind: 'time', at: '2026-11-01T00:00:00.000Z' }, 'app', logical)).toThrow(
      new RecoveryTargetOutOfRange("--time 2026-11-01T00:00:00.000Z is outside the restorable window of source 'app' (2026-11-24T07:57:40.123Z … 2026-11-24T07:57:40.123Z); see: tidemark list app"),
    );
    expect(() => assertTimeInWindow('2026-11-01T00:00:00.000Z', null, 'app')).toThrow(RecoveryTargetOutOfRange);
  });

  it('fails when a time between backups needs an archive, pointing at the backup before it', () => {
    const backups = [manifest(ID, '2026-11-24T07:57:40.123Z'), manifest('20261125T075740.123Z-3f9a1c', '2026-11-25T07:57:40.123Z')];
    expect(() => selectBackup(catalogOf(backups), { kind: 'time', at: '2026-11-24T12:00:00.000Z' }, 'app', logical)).toThrow(
      `--time 2026-11-24T12:00:00.000Z: source 'app' has no continuous archive, so it restores only to its backups' points; the newest before that time is backup ${ID} (2026-11-24T07:57:40.123Z): use --backup ${ID}`,
    );
  });

  it('fails clearly for an unknown, unfinished, damaged or foreign backup id', () => {
    const rds = manifest('20261126T000000.000Z-000001', '2026-11-26T00:00:00.000Z', 'rds-snapshot');
    const catalog = catalogOf([rds], { incomplete: ['20261127T000000.000Z-000002'], problems: [{ id: '20261128T000000.000Z-000003', reason: 'backup x: manifest is damaged (checksum mismatch)' }] });
    expect(() => selectBackup(catalog, { kind: 'backup', id: ID }, 'app', logical)).toThrow(BackupNotFound);
    expect(() => selectBackup(catalog, { kind: 'backup', id: '20261127T000000.000Z-000002' }, 'app', logical)).toThrow(/never finished/);
    expect(() => selectBackup(catalog, { kind: 'backup', id: '20261128T000000.000Z-000003' }, 'app', logical)).toThrow(IntegrityError);
    expect(() => selectBackup(catalog, { kind: 'backup', id: rds.id }, 'app', logical)).toThrow(
      `backup ${rds.id} is a full backup (rds-snapshot); this restore takes logical (pg_dump) backups`,
    );
    expect(() => selectBackup(catalog, { kind: 'latest' }, 'app', logical)).toThrow(BackupNotFound);
    expect(() => selectBackup(catalog, { kind: 'lsn', lsn: '0/1' }, 'app', logical)).toThrow(/^--lsn 0\/1 needs continuous archiving/);
  });
});
