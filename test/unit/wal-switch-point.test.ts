import fc from 'fast-check';
import { spoolStart, startPastSwitch, timelineEnds } from '../../lib/core/engines/postgres/wal/switch-point';
import { formatLsn, segmentName, segmentStartLsn } from '../../lib/core/engines/postgres/wal/wal-names';

/** switch-point.ts: where pg_receivewal would start, and the start that steps over a timeline's end. */
const SEG = 16 * 1024 * 1024;

/** A history file for timeline `chain.length + 1`: each ancestor's end, ascending. */
const historyOf = (ends: readonly bigint[]) => ends.map((end, i) => `${i + 1}\t${formatLsn(end)}\tno recovery target specified\n`).join('');

const endsArb = fc.uniqueArray(fc.bigInt({ min: 1n, max: 1n << 40n }), { minLength: 1, maxLength: 6 }).map((xs) => xs.sort((a, b) => (a < b ? -1 : 1)));

describe('WAL switch points', () => {
  it('timelineEnds: every ancestor ends where its line says, followed by the next line’s timeline (the last by the current one)', () => {
    fc.assert(
      fc.property(endsArb, (ends) => {
        const current = ends.length + 1;
        const map = timelineEnds(historyOf(ends), current);
        expect([...map.entries()]).toEqual(ends.map((end, i) => [i + 1, { end, next: i + 2 }]));
      }),
    );
  });

  it('startPastSwitch: the next timeline in the same segment exactly when the start is its timeline’s end, else nothing', () => {
    fc.assert(
      fc.property(endsArb, fc.integer({ min: 1, max: 7 }), fc.boolean(), fc.integer({ min: 0, max: 3 }), (rawEnds, timeline, atEnd, jitter) => {
        // Ends on segment boundaries half the time, as after a switch; a start on some timeline.
        const ends = rawEnds.map((e) => (atEnd ? (e / BigInt(SEG)) * BigInt(SEG) + BigInt(SEG) * BigInt(rawEnds.indexOf(e)) : e));
        const current = ends.length + 1;
        const end = ends[timeline - 1];
        const segno = end === undefined ? jitter : Number(end / BigInt(SEG)) + (atEnd ? 0 : jitter);
        const got = startPastSwitch({ timeline, segno }, current, historyOf(ends), SEG);
        const expected = timeline < current && end === segmentStartLsn(segno, SEG) ? { timeline: timeline + 1, segno } : undefined;
        expect(got).toEqual(expected);
      }),
    );
  });

  it('the failover after pg_switch_wal: timeline 1 ended at 0/5000000, the spool’s open segment 000000010000000000000005', () => {
    const history = '1\t0/5000000\tno recovery target specified\n';
    const start = spoolStart({ segments: [], histories: [], partial: '000000010000000000000005', stalePartials: [] }, SEG)!;
    expect(start).toEqual({ timeline: 1, segno: 5 });
    expect(startPastSwitch(start, 2, history, SEG)).toEqual({ timeline: 2, segno: 5 });
    // Inside the segment (a standby that was behind): pg_receivewal streams to the switch itself.
    expect(startPastSwitch(start, 2, '1\t0/50000A0\tno recovery target specified\n', SEG)).toBeUndefined();
    expect(startPastSwitch(start, 1, '', SEG)).toBeUndefined();
  });

  it('spoolStart: the newest file by segment then timeline; after it when complete, inside it when partial', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ timeline: fc.integer({ min: 1, max: 4 }), segno: fc.integer({ min: 0, max: 600 }) }), { selector: (s) => `${s.timeline}/${s.segno}`, maxLength: 8 }),
        fc.option(fc.record({ timeline: fc.integer({ min: 1, max: 4 }), segno: fc.integer({ min: 0, max: 600 }) })),
        (complete, partial) => {
          const spool = {
            segments: complete.map((s) => segmentName(s, SEG)).sort(),
            histories: [],
            ...(partial ? { partial: segmentName(partial, SEG) } : {}),
            stalePartials: [],
          };
          const files = [...complete.map((s) => ({ ...s, partial: false })), ...(partial ? [{ ...partial, partial: true }] : [])];
          const newest = files.sort((a, b) => b.segno - a.segno || b.timeline - a.timeline || Number(a.partial) - Number(b.partial))[0];
          expect(spoolStart(spool, SEG)).toEqual(newest && { timeline: newest.timeline, segno: newest.partial ? newest.segno : newest.segno + 1 });
        },
      ),
    );
  });
});
