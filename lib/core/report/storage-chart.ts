import { scaleLinear } from 'd3-scale';
import type { Tier } from '../config/tiers';
import { formatBytes } from '../format';
import { isPricedStorageClass, STORAGE_PRICES } from '../pricing';
import { esc, formatTime, formatUsd, num } from './html';
import { bytesByTier, costByTier, costOf, TIERS, totalCost, type BytesByClass, type SourceStorage } from './storage';

/**
 * Chain sizes by tier: one stacked bar per chain (and for the archive and leftovers), then the
 * month's cost per tier at pricing.ts's list prices. The newest chains are the ones people ask
 * about; older ones beyond `maxRows` are summed into one row so the chart stays readable.
 */

export const STORAGE_CHART_WIDTH = 960;
const LABEL = 250;
const VALUE = 170;
const ROW = 24;
const BAR = 14;

const TIER_NAMES: Readonly<Record<Tier, string>> = { standard: 'standard', warm: 'warm', cold: 'cold' };

interface Row {
  readonly label: string;
  readonly detail: string;
  readonly bytes: BytesByClass;
}

function merge(parts: readonly BytesByClass[]): BytesByClass {
  const out: Record<string, number> = {};
  for (const p of parts) for (const [c, n] of Object.entries(p)) out[c] = (out[c] ?? 0) + n;
  return out;
}

function rowsOf(storage: SourceStorage, maxRows: number): Row[] {
  const chains = storage.chains.map((c) => ({
    label: `${c.type} ${c.base}`,
    detail: `${c.backups} backup${c.backups === 1 ? '' : 's'}, newest point ${formatTime(c.newest)}`,
    bytes: c.bytes,
  }));
  const shown = chains.length > maxRows ? chains.slice(chains.length - (maxRows - 1)) : chains;
  const older = chains.slice(0, chains.length - shown.length);
  const rows: Row[] = [];
  if (older.length > 0) rows.push({ label: `${older.length} older chains`, detail: 'summed', bytes: merge(older.map((c) => c.bytes)) });
  rows.push(...shown);
  if (costOf(storage.archive).bytes > 0) rows.push({ label: 'continuous archive', detail: 'WAL or binlog', bytes: storage.archive });
  if (costOf(storage.other).bytes > 0) rows.push({ label: 'other', detail: 'unfinished backups, drill reports', bytes: storage.other });
  return rows;
}

export function renderStorageChart(storage: SourceStorage, maxRows = 16): string {
  const rows = rowsOf(storage, maxRows);
  if (rows.length === 0) return '<p class="empty">Nothing stored yet.</p>';
  const widest = Math.max(1, ...rows.map((r) => costOf(r.bytes).bytes));
  const x = scaleLinear()
    .domain([0, widest])
    .range([LABEL, STORAGE_CHART_WIDTH - VALUE]);
  const height = rows.length * ROW + 8;
  const body = rows
    .map((r, i) => {
      const y = 4 + i * ROW;
      const tiers = bytesByTier(r.bytes);
      const cost = costOf(r.bytes);
      let cursor = 0;
      const bars = TIERS.filter((t) => tiers[t] > 0)
        .map((t) => {
          const x0 = x(cursor);
          cursor += tiers[t];
          const width = Math.max(1.5, x(cursor) - x0);
          return `<rect class="tier tier-${t}" x="${num(x0)}" y="${num(y + (ROW - BAR) / 2)}" width="${num(width)}" height="${BAR}"><title>${esc(`${r.label}: ${formatBytes(tiers[t])} ${TIER_NAMES[t]}`)}</title></rect>`;
        })
        .join('');
      return (
        `<g class="storage-row"><title>${esc(`${r.label}: ${r.detail}`)}</title><text class="row-label" x="${LABEL - 10}" y="${num(y + ROW / 2 + 4)}" text-anchor="end">${esc(r.label)}</text>` +
        bars +
        `<text class="row-value" x="${STORAGE_CHART_WIDTH - VALUE + 10}" y="${num(y + ROW / 2 + 4)}">${esc(`${formatBytes(cost.bytes)} · ${formatUsd(cost.usd)}/mo`)}</text></g>`
      );
    })
    .join('');
  return `<svg class="chart storage" data-chart="storage" viewBox="0 0 ${STORAGE_CHART_WIDTH} ${height}" width="100%" role="img" aria-label="chain sizes by tier">${body}</svg>`;
}

/** Per tier: the classes its bytes are in, their list price, and the month's cost; then the total. */
export function renderCostTable(storage: SourceStorage): string {
  const tiers = costByTier(storage);
  const rows = TIERS.filter((t) => tiers[t].bytes > 0)
    .map((t) => {
      const classes = Object.entries(tiers[t].classes)
        .map(([c, n]) => `${esc(isPricedStorageClass(c) ? STORAGE_PRICES[c].name : c)} ${esc(formatBytes(n))}${isPricedStorageClass(c) ? ` at ${esc(`$${STORAGE_PRICES[c].usdPerGBMonth}`)}/GB` : ' (no list price)'}`)
        .join('<br>');
      return `<tr><td><span class="swatch tier-${t}"></span>${esc(TIER_NAMES[t])}</td><td>${classes}</td><td class="num">${esc(formatBytes(tiers[t].bytes))}</td><td class="num">${esc(formatUsd(tiers[t].usd))}</td></tr>`;
    })
    .join('');
  const total = totalCost(storage);
  return (
    `<table class="cost"><thead><tr><th>tier</th><th>storage class and list price (per GB-month)</th><th class="num">stored</th><th class="num">per month</th></tr></thead>` +
    `<tbody>${rows}</tbody><tfoot><tr><td>total</td><td></td><td class="num">${esc(formatBytes(total.bytes))}</td><td class="num">${esc(formatUsd(total.usd))}</td></tr></tfoot></table>`
  );
}
