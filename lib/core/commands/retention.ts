import { sourceConfig } from '../config/load';
import { mergePolicy, type SourcePolicy } from '../config/retention';
import type { TidemarkConfig } from '../config/schema';
import { UsageError } from '../errors';
import { formatBytes } from '../format';
import { Repository } from '../repository/repository';
import type { ObjectStore } from '../repository/storage';
import { applyRetentionPlan } from '../retention/apply';
import { buildRetentionCatalog } from '../retention/build-catalog';
import { planRetention, type KeptBackup, type PlannedDeletion, type RetentionOptions } from '../retention/plan-retention';
import { planTiering, type PlannedTierMove } from '../retention/plan-tiering';

export interface RetentionCommandOptions extends RetentionOptions {
  readonly all?: boolean;
  readonly apply?: boolean;
  /** @default - the current time */
  readonly now?: Date;
  readonly onDeleted?: (source: string, d: PlannedDeletion) => void;
}

export interface SourceRetention {
  readonly source: string;
  readonly keep: readonly KeptBackup[];
  /** Every planned deletion; those with `notBefore` wait for Object Lock and are not done now. */
  readonly delete: readonly PlannedDeletion[];
  /** Tier moves the tiering function applies through the tier tags (not done by this command). */
  readonly tiering: readonly PlannedTierMove[];
  /** Bytes the due deletions free. */
  readonly bytesFreed: number;
  /** Folders retention does not touch: their manifest could not be read. */
  readonly untouchable: readonly string[];
}

/** `tidemark retention --json`. */
export interface RetentionResult {
  readonly applied: boolean;
  readonly now: string;
  readonly sources: readonly SourceRetention[];
}

/**
 * `tidemark retention <source|--all> [--apply]`: plans (the default) or applies retention. The plan
 * printed by a dry run is what --apply does at the same moment: the deletions that are due, nothing else.
 */
export async function runRetention(config: TidemarkConfig, source: string | undefined, options: RetentionCommandOptions = {}): Promise<RetentionResult> {
  if ((source === undefined) === !options.all) throw new UsageError('name one source or give --all');
  const names = source === undefined ? Object.keys(config.sources) : [source];
  names.forEach((name) => sourceConfig(config, name));
  const repository = await Repository.open(config);
  const url = typeof config.repository === 'string' ? config.repository : config.repository.url;
  const lockDays = url.startsWith('s3://') ? config.aws?.objectLock.days : undefined;
  const now = options.now ?? new Date();
  const sources: SourceRetention[] = [];
  for (const name of names) {
    sources.push(await retainSource(repository.store, name, mergePolicy(config, config.sources[name]), { ...options, now, lockDays }));
  }
  return { applied: options.apply === true, now: now.toISOString(), sources };
}

/** One source: catalog, plan, and (with `apply`) the due deletions. The retention Lambda calls this too. */
export async function retainSource(
  store: ObjectStore,
  source: string,
  policy: SourcePolicy,
  options: RetentionCommandOptions & { readonly now: Date; readonly lockDays?: number },
): Promise<SourceRetention> {
  const catalog = await buildRetentionCatalog(store, source, { lockDays: options.lockDays });
  const plan = planRetention(catalog, policy.retention, options.now, options);
  const tiering = planTiering(catalog, policy, options.now, options, plan);
  const due = plan.delete.filter((d) => d.notBefore === undefined);
  if (options.apply) {
    await applyRetentionPlan(store, plan, (d) => options.onDeleted?.(source, d));
    await store.collectStaleUploads?.(`${source}/`);
  }
  return {
    source,
    keep: plan.keep,
    delete: plan.delete,
    tiering: tiering.moves,
    bytesFreed: due.reduce((n, d) => n + d.bytes, 0),
    untouchable: catalog.untouchable,
  };
}

/** The plan as a table for people: what, why, bytes freed. */
export function formatRetention(result: RetentionResult): string {
  const lines: string[] = [];
  for (const s of result.sources) {
    const verb = result.applied ? 'deleted' : 'would delete';
    lines.push(`${s.source}: keeps ${s.keep.length} backup${s.keep.length === 1 ? '' : 's'}; ${verb} ${formatBytes(s.bytesFreed)}`);
    if (s.delete.length > 0) {
      lines.push(`  ${'WHAT'.padEnd(48)}  ${'BYTES'.padStart(10)}  WHY`);
      for (const d of s.delete) {
        const what = `${d.what} ${d.id}${d.objects > 1 && d.what === 'archive' ? ` (+${d.objects - 1})` : ''}`;
        const when = d.notBefore ? ` — locked: not before ${d.notBefore}` : '';
        lines.push(`  ${what.padEnd(48)}  ${formatBytes(d.bytes).padStart(10)}  ${d.reason}${when}`);
      }
    }
    for (const m of s.tiering) lines.push(`  tier ${m.tier.padEnd(4)} chain ${m.chain} (${m.keys.length} objects, ${formatBytes(m.bytes)}): ${m.reason}`);
    for (const id of s.untouchable) lines.push(`  left alone: ${id} (its manifest cannot be read; see tidemark verify)`);
  }
  if (!result.applied && result.sources.some((s) => s.delete.some((d) => !d.notBefore))) lines.push('dry run: nothing was deleted (use --apply)');
  return lines.join('\n');
}
