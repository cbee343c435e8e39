import { tierOfStorageClass, type Tier } from '../config/tiers';
import type { BackupType } from '../engines/backup-types';
import { monthlyStorageUsd } from '../pricing';
import { archivePrefix } from '../repository/archive';
import { backupsPrefix } from '../repository/layout';
import type { StoredObjectInfo } from '../repository/storage';

/**
 * What a source's repository holds, chain by chain and storage class by class, and what that costs
 * a month at the list prices of pricing.ts. Tiering moves whole chains (DESIGN.md §3), so a chain is
 * the unit people decide about: a full (or logical) backup with every diff and incr built on it.
 * Classes come from the store's listing (S3's StorageClass: what is billed, not what a tag asks
 * for); a folder reports none, and all of it is STANDARD.
 */

/** Bytes per storage class as the store names it (STANDARD, STANDARD_IA, GLACIER, …). */
export type BytesByClass = Readonly<Record<string, number>>;

export interface ChainStorage {
  /** The backup the chain starts from: a full, or a logical backup on its own. */
  readonly base: string;
  readonly type: BackupType;
  /** Backups in the chain, the base included. */
  readonly backups: number;
  /** Newest restore point in the chain. */
  readonly newest: string;
  readonly bytes: BytesByClass;
}

export interface SourceStorage {
  /** Oldest base first. */
  readonly chains: readonly ChainStorage[];
  /** The continuous archive (WAL, binlog) and its key epochs. */
  readonly archive: BytesByClass;
  /** Folders of backups that never finished or cannot be read, drill reports, anything else. */
  readonly other: BytesByClass;
}

/** The part of a listed backup the grouping needs (commands/list.ts's ListedBackup has it). */
export interface ChainMember {
  readonly id: string;
  readonly type: BackupType;
  readonly restorePoint: string;
  readonly chain?: { readonly base: string };
}

const DEFAULT_CLASS = 'STANDARD';

function add(into: Record<string, number>, storageClass: string | undefined, bytes: number): void {
  const c = storageClass ?? DEFAULT_CLASS;
  into[c] = (into[c] ?? 0) + bytes;
}

/** Groups one listing of `<source>/` (every object, with its class) by chain, archive and the rest. */
export function storageByChain(source: string, backups: readonly ChainMember[], objects: readonly StoredObjectInfo[]): SourceStorage {
  const chainOf = new Map<string, string>();
  const chains = new Map<string, { base: string; type: BackupType; backups: number; newest: string; bytes: Record<string, number> }>();
  for (const b of backups) {
    const base = b.chain?.base ?? b.id;
    chainOf.set(b.id, base);
    const chain = chains.get(base) ?? { base, type: b.type, backups: 0, newest: b.restorePoint, bytes: {} };
    if (base === b.id) chain.type = b.type;
    chain.backups += 1;
    if (b.restorePoint > chain.newest) chain.newest = b.restorePoint;
    chains.set(base, chain);
  }
  const backupsAt = backupsPrefix(source);
  const archives = [archivePrefix(source, 'wal'), archivePrefix(source, 'binlog')];
  const archive: Record<string, number> = {};
  const other: Record<string, number> = {};
  for (const o of objects) {
    if (o.key.startsWith(backupsAt)) {
      const base = chainOf.get(o.key.slice(backupsAt.length).split('/')[0]);
      const chain = base === undefined ? undefined : chains.get(base);
      if (chain) add(chain.bytes, o.storageClass, o.size);
      else add(other, o.storageClass, o.size);
    } else if (archives.some((p) => o.key.startsWith(p))) {
      add(archive, o.storageClass, o.size);
    } else {
      add(other, o.storageClass, o.size);
    }
  }
  return { chains: [...chains.values()].sort((a, b) => a.base.localeCompare(b.base)), archive, other };
}

export interface Cost {
  readonly bytes: number;
  readonly usd: number;
  /** Bytes in classes pricing.ts has no price for (shown, not guessed). */
  readonly unpricedBytes: number;
}

export function costOf(bytes: BytesByClass): Cost {
  let total = 0;
  let usd = 0;
  let unpricedBytes = 0;
  for (const [storageClass, n] of Object.entries(bytes)) {
    total += n;
    const price = monthlyStorageUsd(n, storageClass);
    if (price === undefined) unpricedBytes += n;
    else usd += price;
  }
  return { bytes: total, usd, unpricedBytes };
}

export const TIERS: readonly Tier[] = ['standard', 'warm', 'cold'];

/** Bytes per tier (the tier-tag contract's names) of a class breakdown. */
export function bytesByTier(bytes: BytesByClass): Readonly<Record<Tier, number>> {
  const out: Record<Tier, number> = { standard: 0, warm: 0, cold: 0 };
  for (const [storageClass, n] of Object.entries(bytes)) out[tierOfStorageClass(storageClass)] += n;
  return out;
}

/** Per tier: its classes, bytes and monthly cost. Summed over tiers, the source's total. */
export function costByTier(storage: SourceStorage): Readonly<Record<Tier, Cost & { classes: BytesByClass }>> {
  const classes: Record<Tier, Record<string, number>> = { standard: {}, warm: {}, cold: {} };
  for (const part of [...storage.chains.map((c) => c.bytes), storage.archive, storage.other]) {
    for (const [storageClass, n] of Object.entries(part)) add(classes[tierOfStorageClass(storageClass)], storageClass, n);
  }
  return {
    standard: { ...costOf(classes.standard), classes: classes.standard },
    warm: { ...costOf(classes.warm), classes: classes.warm },
    cold: { ...costOf(classes.cold), classes: classes.cold },
  };
}

export function totalCost(storage: SourceStorage): Cost {
  const tiers = costByTier(storage);
  return TIERS.reduce<Cost>((sum, t) => ({ bytes: sum.bytes + tiers[t].bytes, usd: sum.usd + tiers[t].usd, unpricedBytes: sum.unpricedBytes + tiers[t].unpricedBytes }), {
    bytes: 0,
    usd: 0,
    unpricedBytes: 0,
  });
}
