import fc from 'fast-check';
import { parseDdlCommit, parseDdlCommits } from '../../lib/core/engines/postgres/wal-ddl';

// Lines as pg_waldump 15 printed them for CREATE TABLE t1 …; TRUNCATE t2; DROP TABLE t1 (trimmed inval msgs).
const DROP =
  'rmgr: Transaction len (rec/tot):   1245/  1245, tx:        729, lsn: 0/0153C878, prev 0/0153C840, desc: COMMIT 2026-12-01 04:42:12.755065 UTC; rels: base/5/16384 base/5/16387 base/5/16388 base/5/16389; dropped stats: 2/5/16389 2/5/16388 2/5/16387 2/5/16384; inval msgs: catcache 32 catcache 7 relcache 16389 snapshot 2608';
const TRUNCATE =
  'rmgr: Transaction len (rec/tot):    114/   114, tx:        728, lsn: 0/0153BF10, prev 0/0153BED0, desc: COMMIT 2026-12-01 04:42:12.718220 UTC; rels: base/5/16391; inval msgs: catcache 55 catcache 54 relcache 16391';
const PLAIN = 'rmgr: Transaction len (rec/tot):     34/    34, tx:        727, lsn: 0/0153BE90, prev 0/0153BE58, desc: COMMIT 2026-12-01 04:42:12.700000 UTC';

describe('drops and truncates in pg_waldump output', () => {
  it('reads a DROP TABLE commit: files, dropped relation oids, time in UTC', () => {
    expect(parseDdlCommit(DROP)).toEqual({
      xid: '729',
      lsn: '0/0153C878',
      time: '2026-12-01T04:42:12.755065Z',
      kind: 'drop',
      files: [16384, 16387, 16388, 16389].map((relfilenode) => ({ database: 5, relfilenode })),
      droppedRelations: [16389, 16388, 16387, 16384].map((oid) => ({ database: 5, oid })),
    });
  });

  it('reads a TRUNCATE (new files, nothing dropped) and skips commits that removed no files', () => {
    expect(parseDdlCommit(TRUNCATE)).toMatchObject({ xid: '728', kind: 'truncate', files: [{ database: 5, relfilenode: 16391 }], droppedRelations: [] });
    expect(parseDdlCommit(PLAIN)).toBeUndefined();
    expect(parseDdlCommits([PLAIN, TRUNCATE, 'pg_waldump: error: error in WAL record at 0/153FD58', DROP].join('\n')).map((c) => c.xid)).toEqual(['728', '729']);
  });

  it('reads shared and tablespace files, and offsets other than UTC', () => {
    const line = `rmgr: Transaction len (rec/tot): 99/99, tx: 5, lsn: 1/A, prev 1/9, desc: COMMIT 2026-12-01 05:42:12.5 +01; rels: global/1262 pg_tblspc/16400/PG_15_202209061/5/16500`;
    expect(parseDdlCommit(line)).toMatchObject({
      time: '2026-12-01T04:42:12.500000Z',
      files: [
        { database: 0, relfilenode: 1262 },
        { database: 5, relfilenode: 16500 },
      ],
    });
  });

  it('round-trips any commit written the way pg_waldump writes it', () => {
    const oid = fc.integer({ min: 1, max: 2 ** 32 - 1 });
    fc.assert(
      fc.property(
        fc.record({
          xid: fc.bigInt({ min: 3n, max: 2n ** 63n }).map(String),
          hi: fc.integer({ min: 0, max: 0xffffffff }),
          lo: fc.integer({ min: 0, max: 0xffffffff }),
          ms: fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }),
          micros: fc.integer({ min: 0, max: 999 }),
          files: fc.array(fc.tuple(oid, oid), { minLength: 1, maxLength: 8 }),
          dropped: fc.array(fc.tuple(oid, oid), { maxLength: 8 }),
        }),
        ({ xid, hi, lo, ms, micros, files, dropped }) => {
          const lsn = `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase().padStart(8, '0')}`;
          const iso = new Date(ms).toISOString();
          const time = `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(micros).padStart(3, '0')}`;
          const rels = files.map(([d, r]) => `base/${d}/${r}`).join(' ');
          const stats = dropped.length ? `; dropped stats: ${dropped.map(([d, o]) => `2/${d}/${o}`).join(' ')}` : '';
          const line = `rmgr: Transaction len (rec/tot): 70/70, tx: ${xid}, lsn: ${lsn}, prev 0/0, desc: COMMIT ${time} UTC; rels: ${rels}${stats}; inval msgs: catcache 7`;
          const parsed = parseDdlCommit(line)!;
          expect(parsed.xid).toBe(xid);
          expect(parsed.lsn).toBe(lsn);
          expect(parsed.time).toBe(`${iso.slice(0, 23)}${String(micros).padStart(3, '0')}Z`);
          expect(parsed.kind).toBe(dropped.length ? 'drop' : 'truncate');
          expect(parsed.files).toEqual(files.map(([database, relfilenode]) => ({ database, relfilenode })));
          expect(parsed.droppedRelations).toEqual(dropped.map(([database, oid]) => ({ database, oid })));
        },
      ),
      { numRuns: 500 },
    );
  });
});
