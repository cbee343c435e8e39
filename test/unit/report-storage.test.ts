import fc from 'fast-check';
import { BYTES_PER_GB, STORAGE_PRICES } from '../../lib/core/pricing';
import { renderStorageChart } from '../../lib/core/report/storage-chart';
import { costByTier, costOf, storageByChain, TIERS, totalCost, type ChainMember } from '../../lib/core/report/storage';

const CLASSES = [undefined, 'STANDARD', 'STANDARD_IA', 'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR'] as const;

/** Backups forming chains (a full with diffs and incrs, or a logical alone) and objects under them, the archive and elsewhere. */
const arbitraryRepository = fc
  .array(fc.record({ kind: fc.constantFrom('full', 'logical'), members: fc.integer({ min: 0, max: 3 }) }), { maxLength: 6 })
  .chain((chains) => {
    const backups: ChainMember[] = [];
    chains.forEach((c, i) => {
      const base = `2026110${i}T000000.000Z-00000${i}`;
      backups.push({ id: base, type: c.kind, restorePoint: `2026-11-0${i + 1}T00:00:00.000Z` });
      if (c.kind === 'full') {
        for (let m = 1; m <= c.members; m++) {
          backups.push({ id: `${base}-${m}`, type: m === 1 ? 'diff' : 'incr', restorePoint: `2026-11-0${i + 1}T0${m}:00:00.000Z`, chain: { base } });
        }
      }
    });
    const folders = [...backups.map((b) => `app/backups/${b.id}/`), 'app/backups/20261130T000000.000Z-ffffff/', 'app/wal/00000001/', 'app/binlog/', 'app/drills/'];
    const objects = fc.array(
      fc.record({ folder: fc.constantFrom(...folders), name: fc.constantFrom('a', 'b', 'manifest.json'), size: fc.integer({ min: 0, max: 5e12 }), storageClass: fc.constantFrom(...CLASSES) }),
      { maxLength: 40 },
    );
    return fc.tuple(fc.constant(backups), objects);
  });

describe('chain sizes by tier and their monthly cost', () => {
  it('every stored byte is counted once: in its chain, the archive or the rest', () => {
    fc.assert(
      fc.property(arbitraryRepository, ([backups, raw]) => {
        const objects = raw.map((o) => ({ key: `${o.folder}${o.name}`, size: o.size, ...(o.storageClass ? { storageClass: o.storageClass } : {}) }));
        const storage = storageByChain('app', backups, objects);
        const total = objects.reduce((n, o) => n + o.size, 0);
        expect(totalCost(storage).bytes).toBe(total);
        // A chain holds exactly the objects of its members' folders.
        for (const chain of storage.chains) {
          const members = backups.filter((b) => (b.chain?.base ?? b.id) === chain.base).map((b) => `app/backups/${b.id}/`);
          const expected = objects.filter((o) => members.some((m) => o.key.startsWith(m))).reduce((n, o) => n + o.size, 0);
          expect(costOf(chain.bytes).bytes).toBe(expected);
          expect(chain.backups).toBe(members.length);
        }
        const archived = objects.filter((o) => o.key.startsWith('app/wal/') || o.key.startsWith('app/binlog/')).reduce((n, o) => n + o.size, 0);
        expect(costOf(storage.archive).bytes).toBe(archived);
      }),
    );
  });

  it('costs per tier sum to the total, and each is bytes × the list price of its class', () => {
    fc.assert(
      fc.property(arbitraryRepository, ([backups, raw]) => {
        const objects = raw.map((o) => ({ key: `${o.folder}${o.name}`, size: o.size, ...(o.storageClass ? { storageClass: o.storageClass } : {}) }));
        const storage = storageByChain('app', backups, objects);
        const tiers = costByTier(storage);
        const total = totalCost(storage);
        expect(TIERS.reduce((n, t) => n + tiers[t].usd, 0)).toBeCloseTo(total.usd, 6);
        expect(TIERS.reduce((n, t) => n + tiers[t].bytes, 0)).toBe(total.bytes);
        // Independently: price every object on its own and add up.
        const priced = objects.reduce((n, o) => {
          const c = (o.storageClass ?? 'STANDARD') as keyof typeof STORAGE_PRICES;
          return n + (STORAGE_PRICES[c] ? (o.size / BYTES_PER_GB) * STORAGE_PRICES[c].usdPerGBMonth : 0);
        }, 0);
        expect(total.usd).toBeCloseTo(priced, 6);
        expect(total.unpricedBytes).toBe(objects.filter((o) => o.storageClass === 'GLACIER_IR').reduce((n, o) => n + o.size, 0));
        // A folder reports no class: all of it is standard.
        expect(tiers.standard.bytes).toBe(objects.filter((o) => o.storageClass === undefined || o.storageClass === 'STANDARD').reduce((n, o) => n + o.size, 0));
      }),
    );
  });

  it('draws one bar per chain with a segment per tier it occupies, older chains beyond the limit summed', () => {
    const backups: ChainMember[] = Array.from({ length: 20 }, (_, i) => ({ id: `b${String(i).padStart(2, '0')}`, type: 'logical', restorePoint: `2026-11-${String(i + 1).padStart(2, '0')}T00:00:00.000Z` }));
    const objects = backups.flatMap((b, i) => [
      { key: `app/backups/${b.id}/dump`, size: 1e9, storageClass: i < 5 ? 'GLACIER' : 'STANDARD' },
      { key: `app/backups/${b.id}/manifest.json`, size: 1e3 },
    ]);
    const svg = renderStorageChart(storageByChain('app', backups, objects), 8);
    expect((svg.match(/<g class="storage-row">/g) ?? []).length).toBe(8);
    expect(svg).toContain('13 older chains');
    // The summed row holds 5 cold and 8 standard chains: two segments; the others one each.
    expect((svg.match(/class="tier tier-cold"/g) ?? []).length).toBe(1);
    expect((svg.match(/class="tier tier-standard"/g) ?? []).length).toBe(8);
  });
});
