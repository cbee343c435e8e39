import fc from 'fast-check';
import { scaleUtc } from 'd3-scale';
import { tickLabels } from '../../lib/core/report/axis';
import { placeSegments, windowSegments } from '../../lib/core/report/window-layout';

const BASE = Date.parse('2026-11-01T00:00:00.000Z');
const iso = (t: number) => new Date(BASE + t * 1000).toISOString();

/** A window and archive windows at whole seconds within ten days, possibly overlapping or outside it. */
const arbitraryWindow = fc.tuple(fc.integer({ min: 0, max: 864_000 }), fc.integer({ min: 0, max: 864_000 })).map(([a, b]) => ({ from: Math.min(a, b), to: Math.max(a, b) }));
const arbitraryArchive = fc.array(
  fc.tuple(fc.integer({ min: -10_000, max: 900_000 }), fc.integer({ min: 0, max: 300_000 })).map(([from, length]) => ({ from, to: from + length })),
  { maxLength: 8 },
);

describe('restorable window layout', () => {
  it('segments cover the window exactly, in order, without overlap, and neighbours differ in kind', () => {
    fc.assert(
      fc.property(arbitraryWindow, fc.option(arbitraryArchive, { nil: undefined }), (w, archive) => {
        const segments = windowSegments({ from: iso(w.from), to: iso(w.to) }, archive?.map((a) => ({ from: iso(a.from), to: iso(a.to) })));
        expect(segments.length).toBeGreaterThan(0);
        expect(segments[0].from).toBe(iso(w.from));
        expect(segments[segments.length - 1].to).toBe(iso(w.to));
        for (let i = 0; i < segments.length; i++) {
          expect(Date.parse(segments[i].to)).toBeGreaterThanOrEqual(Date.parse(segments[i].from));
          if (i > 0) {
            expect(segments[i].from).toBe(segments[i - 1].to);
            expect(segments[i].kind).not.toBe(segments[i - 1].kind);
          }
        }
        if (archive === undefined) expect(segments.map((s) => s.kind)).toEqual(['points']);
        else expect(segments.every((s) => s.kind !== 'points')).toBe(true);
      }),
    );
  });

  it('a moment is in a continuous segment exactly when some archive window holds it', () => {
    fc.assert(
      fc.property(arbitraryWindow, arbitraryArchive, fc.integer({ min: 0, max: 1000 }), (w, archive, fraction) => {
        // A moment strictly between whole seconds, so it never sits on a boundary.
        const t = w.from + ((w.to - w.from) * fraction) / 1000 + 0.5;
        fc.pre(t < w.to);
        const segments = windowSegments({ from: iso(w.from), to: iso(w.to) }, archive.map((a) => ({ from: iso(a.from), to: iso(a.to) })));
        const at = BASE + t * 1000;
        const segment = segments.find((s) => Date.parse(s.from) < at && at < Date.parse(s.to));
        const held = archive.some((a) => a.from < t && t < a.to);
        expect(segment?.kind).toBe(held ? 'continuous' : 'gap');
      }),
    );
  });

  it('placed on an axis, segments never overlap, stay inside the window, and short ones stay visible', () => {
    fc.assert(
      fc.property(arbitraryWindow, arbitraryArchive, fc.integer({ min: 100, max: 1200 }), (w, archive, width) => {
        const segments = windowSegments({ from: iso(w.from), to: iso(w.to) }, archive.map((a) => ({ from: iso(a.from), to: iso(a.to) })));
        const x = scaleUtc()
          .domain([new Date(BASE + w.from * 1000 - 1000), new Date(BASE + w.to * 1000 + 1000)])
          .range([80, 80 + width]);
        const placed = placeSegments(segments, (t) => x(t), 3);
        const left = x(new Date(iso(w.from)));
        const right = x(new Date(iso(w.to)));
        const minimum = Math.min(3, (right - left) / segments.length);
        expect(placed).toHaveLength(segments.length);
        expect(placed[0].x).toBeCloseTo(left, 6);
        expect(placed[placed.length - 1].x + placed[placed.length - 1].width).toBeCloseTo(right, 6);
        for (let i = 0; i < placed.length; i++) {
          expect(placed[i].width).toBeGreaterThanOrEqual(minimum - 1e-9);
          if (i > 0) expect(placed[i].x).toBeCloseTo(placed[i - 1].x + placed[i - 1].width, 6);
        }
      }),
    );
  });

  it('no window, no segments; a window of one instant is one segment', () => {
    expect(windowSegments(null)).toEqual([]);
    expect(windowSegments({ from: iso(5), to: iso(5) })).toEqual([{ kind: 'points', from: iso(5), to: iso(5) }]);
    expect(windowSegments({ from: iso(5), to: iso(5) }, [])).toEqual([{ kind: 'gap', from: iso(5), to: iso(5) }]);
  });

  it('time-axis labels read unambiguously left to right, from spans of a second to years', () => {
    // A label without a date belongs to the last date shown before it, as people read an axis.
    const read = (labels: string[]) => {
      let day = '';
      return labels.map((l) => {
        const dated = /^([A-Z][a-z]{2} \d{1,2}) (\d\d:.*)$/.exec(l);
        if (!dated) return `${day} ${l}`;
        day = dated[1];
        return l;
      });
    };
    const logSpan = fc.double({ min: 3, max: 11.2, noNaN: true }).map((e) => Math.round(10 ** e)); // 1 s … 5 years
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2e11 }), logSpan, fc.integer({ min: 2, max: 12 }), (start, span, n) => {
        const ticks = scaleUtc()
          .domain([new Date(BASE + start), new Date(BASE + start + span)])
          .ticks(n);
        fc.pre(ticks.length > 1);
        const labels = tickLabels(ticks);
        expect(new Set(read(labels)).size).toBe(ticks.length);
      }),
      { numRuns: 300 },
    );
    expect(tickLabels([new Date('2026-12-01T12:00:00Z'), new Date('2026-12-02T00:00:00Z'), new Date('2026-12-02T12:00:00Z')])).toEqual(['Dec 1 12:00', 'Dec 2 00:00', '12:00']);
  });
});
