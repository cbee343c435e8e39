import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRICED_STORAGE_CLASSES, RETRIEVAL_PRICES, STORAGE_PRICES, monthlyStorageUsd, type PricedStorageClass } from '../../lib/core/pricing';
import { estimateRehydration } from '../../lib/core/repository/rehydrate';

/** README's cost estimate and the report price storage from one table; these tests keep them equal. */
describe('S3 list prices (lib/core/pricing.ts)', () => {
  const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
  const start = readme.indexOf('### What it costs');
  const costSection = readme.slice(start, readme.indexOf('\n## ', start));

  /** The class an item of README's table names; the longest names first ("S3 Standard-IA" is not "S3 Standard"). */
  function classNamed(text: string): PricedStorageClass | undefined {
    if (/Deep Archive/i.test(text)) return 'DEEP_ARCHIVE';
    if (/Standard-IA/i.test(text)) return 'STANDARD_IA';
    if (/Glacier Flexible Retrieval/i.test(text)) return 'GLACIER';
    if (/\bStandard\b/.test(text)) return 'STANDARD';
    return undefined;
  }

  it('are the 2025 us-east-1 list prices per GB-month', () => {
    expect(Object.fromEntries(PRICED_STORAGE_CLASSES.map((c) => [c, STORAGE_PRICES[c].usdPerGBMonth]))).toEqual({
      STANDARD: 0.023,
      STANDARD_IA: 0.0125,
      GLACIER: 0.0036,
      DEEP_ARCHIVE: 0.00099,
    });
    expect(monthlyStorageUsd(1024 ** 3 * 100, 'STANDARD')).toBeCloseTo(2.3, 10);
    expect(monthlyStorageUsd(1024 ** 3, 'GLACIER_IR')).toBeUndefined(); // not guessed
  });

  it("README's cost table prices every storage row with the table's price, and its totals follow from them", () => {
    const rows = costSection
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| item') && !l.startsWith('|---'))
      .map((l) => l.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').trim()));
    const storageRows = rows
      .map(([item, quantity, price, perMonth]) => ({ item, quantity, price, perMonth, storageClass: classNamed(item) }))
      .filter((r) => r.storageClass !== undefined && /\$[\d.]+\/GB\b/.test(r.price));
    // The two classes the default policy uses must be found, or this test would pass on nothing.
    expect(storageRows.map((r) => r.storageClass)).toEqual(expect.arrayContaining(['STANDARD', 'GLACIER']));
    for (const r of storageRows) {
      const usd = Number(/\$([\d.]+)\/GB\b/.exec(r.price)![1]);
      expect({ item: r.item, usd }).toEqual({ item: r.item, usd: STORAGE_PRICES[r.storageClass!].usdPerGBMonth });
    }
    // Rows that are pure storage: quantity in GB × the price = the month's figure, to the cent.
    for (const r of storageRows.filter((row) => /^\$[\d.]+$/.test(row.perMonth))) {
      const gb = Number(/([\d,]+) GB$/.exec(r.quantity)![1].replace(/,/g, ''));
      expect(Math.round(gb * STORAGE_PRICES[r.storageClass!].usdPerGBMonth * 100) / 100).toBe(Number(r.perMonth.slice(1)));
    }
  });

  it('README names pricing.ts and quotes every class of it at its price', () => {
    const sentence = costSection.split('\n\n').find((p) => p.includes('lib/core/pricing.ts'));
    expect(sentence).toBeDefined();
    const quoted = [...sentence!.matchAll(/(S3 [A-Za-z -]+?) \$([\d.]+)/g)].map(([, name, usd]) => [name, Number(usd)]);
    expect(Object.fromEntries(quoted)).toEqual(Object.fromEntries(PRICED_STORAGE_CLASSES.map((c) => [STORAGE_PRICES[c].name, STORAGE_PRICES[c].usdPerGBMonth])));
  });

  it("restore's rehydration estimate uses the table's retrieval prices", () => {
    const gib = 1024 ** 3;
    const e = estimateRehydration([{ bytes: 10 * gib, storageClass: 'GLACIER' }], 'Standard');
    expect(e.usd).toBeCloseTo(10 * RETRIEVAL_PRICES.GLACIER.Standard.usdPerGB + RETRIEVAL_PRICES.GLACIER.Standard.usdPer1000Requests / 1000, 10);
    const deep = estimateRehydration([{ bytes: gib, storageClass: 'DEEP_ARCHIVE' }], 'Bulk');
    expect(deep.usd).toBeCloseTo(RETRIEVAL_PRICES.DEEP_ARCHIVE.Bulk.usdPerGB + RETRIEVAL_PRICES.DEEP_ARCHIVE.Bulk.usdPer1000Requests / 1000, 10);
  });
});
