import { TIER_TAG_KEY } from '../config/tiers';
import type { ObjectStore } from '../repository/storage';
import type { CatalogBackup, RetentionCatalog } from './catalog-model';
import { ArchiveDeletion, type PlannedDeletion } from './deletion';
import { dueDeletions, type RetentionPlan } from './plan-retention';
import type { TieringPlan } from './plan-tiering';

/**
 * Does exactly the deletions of the plan that are due (no Object Lock in the way), nothing else.
 * A backup's manifest goes first: from then on the backup is not listed, and if apply is cut short
 * the rest are leftovers of an unfinished backup, which the next run collects.
 */
export async function applyRetentionPlan(
  store: ObjectStore,
  plan: RetentionPlan,
  onDone: (d: PlannedDeletion) => void = () => undefined,
): Promise<{ deleted: PlannedDeletion[]; bytes: number }> {
  const deleted: PlannedDeletion[] = [];
  for (const d of dueDeletions(plan)) {
    let first = true;
    for (const batch of d.keyBatches(DELETE_BATCH)) {
      if (first && d.what === 'backup') {
        await store.delete(batch.slice(0, 1));
        if (batch.length > 1) await store.delete(batch.slice(1));
      } else await store.delete(batch);
      first = false;
    }
    deleted.push(d);
    onDone(d);
  }
  return { deleted, bytes: deleted.reduce((n, d) => n + d.bytes, 0) };
}

/** Keys handed to the store at once (S3's DeleteObjects takes 1,000 per request). */
const DELETE_BATCH = 10_000;

/**
 * Tags whole chains by the tier-tag contract; the bucket's lifecycle rules then move them. A store
 * without tags (a folder) has no tiers: nothing is done, and the plan says so by returning false.
 */
export async function applyTieringPlan(store: ObjectStore, plan: TieringPlan): Promise<boolean> {
  if (!store.tag) return false;
  for (const move of plan.moves) await store.tag(move.keys, { key: TIER_TAG_KEY, value: move.tier });
  return true;
}

/** The catalog as it is after `applyRetentionPlan` (and, given, the tier tags): for tests and dry runs. */
export function catalogAfter(catalog: RetentionCatalog, plan: RetentionPlan, tiering?: TieringPlan): RetentionCatalog {
  const due = dueDeletions(plan);
  const gone = new Set(due.filter((d) => d.what !== 'archive').flatMap((d) => d.keys()));
  const tierOf = new Map(tiering?.moves.flatMap((m) => m.keys.map((k) => [k, m.tier] as const)) ?? []);
  const retier = <O extends { key: string; tier: CatalogBackup['objects'][number]['tier'] }>(o: O): O => (tierOf.has(o.key) ? { ...o, tier: tierOf.get(o.key)! } : o);
  const archive = catalog.archive.map((s) => {
    const ranges = due.filter((d): d is ArchiveDeletion => d instanceof ArchiveDeletion && d.stream === s);
    if (ranges.length === 0 && tierOf.size === 0) return s;
    return s.without((i) => ranges.some((r) => r.from <= i && i < r.to), tierOf.size > 0 ? (i) => tierOf.get(s.key(i)) : undefined);
  });
  return {
    ...catalog,
    backups: catalog.backups.filter((b) => !gone.has(b.manifestKey)).map((b) => ({ ...b, objects: b.objects.filter((o) => !gone.has(o.key)).map(retier) })),
    archive,
    unfinished: catalog.unfinished
      .map((u) => ({ ...u, objects: u.objects.filter((o) => !gone.has(o.key)) }))
      .filter((u) => u.objects.length > 0),
  };
}
