import type { SourcePolicy } from '../config/retention';
import { logLine } from '../lambda-environment';
import { jsonLine } from '../log';
import type { ObjectStore } from '../repository/storage';
import { applyTieringPlan } from '../retention/apply';
import { buildRetentionCatalog } from '../retention/build-catalog';
import { planTiering } from '../retention/plan-tiering';
import { retainSource } from './retention';

/** What the retention Lambda returns (and the state of each source, for its alarm). */
export interface RetentionRunResult {
  readonly sources: readonly { readonly source: string; readonly deleted: number; readonly bytesFreed: number; readonly deferred: number }[];
}

/**
 * The retention function: applies every source's plan, one after another, logging each deletion
 * with its reason. One source failing does not stop the others; the run then fails as a whole,
 * so the function's error alarm fires.
 */
export async function enforceRetention(
  store: ObjectStore,
  policies: Readonly<Record<string, SourcePolicy>>,
  options: { readonly lockDays?: number; readonly now?: Date } = {},
): Promise<RetentionRunResult> {
  const sources: RetentionRunResult['sources'][number][] = [];
  const failed: string[] = [];
  for (const [source, policy] of Object.entries(policies)) {
    try {
      const result = await retainSource(store, source, policy, {
        apply: true,
        now: options.now ?? new Date(),
        lockDays: options.lockDays,
        onDeleted: (_s, d) => console.info(jsonLine('info', 'deleted', { source, what: d.what, id: d.id, bytes: d.bytes, reason: d.reason }).trimEnd()),
      });
      const deferred = result.delete.filter((d) => d.notBefore).length;
      sources.push({ source, deleted: result.delete.length - deferred, bytesFreed: result.bytesFreed, deferred });
    } catch (e) {
      failed.push(source);
      logLine('error', 'retention failed', { source, error: (e as Error).name, reason: (e as Error).message });
    }
  }
  if (failed.length > 0) throw new Error(`retention failed for ${failed.join(', ')} (see the log lines before this one)`);
  return { sources };
}

export interface TieringRunResult {
  readonly sources: readonly { readonly source: string; readonly chains: number; readonly objects: number; readonly bytes: number }[];
}

/** The tiering function: tags the chains planTiering picks, per source, logging each move with its reason. */
export async function enforceTiering(
  store: ObjectStore,
  policies: Readonly<Record<string, SourcePolicy>>,
  options: { readonly lockDays?: number; readonly now?: Date } = {},
): Promise<TieringRunResult> {
  const sources: TieringRunResult['sources'][number][] = [];
  const failed: string[] = [];
  for (const [source, policy] of Object.entries(policies)) {
    try {
      const plan = planTiering(await buildRetentionCatalog(store, source, { lockDays: options.lockDays }), policy, options.now ?? new Date());
      await applyTieringPlan(store, plan);
      for (const m of plan.moves) console.info(jsonLine('info', 'tiered', { source, chain: m.chain, tier: m.tier, objects: m.keys.length, bytes: m.bytes, reason: m.reason }).trimEnd());
      sources.push({ source, chains: plan.moves.length, objects: plan.moves.reduce((n, m) => n + m.keys.length, 0), bytes: plan.moves.reduce((n, m) => n + m.bytes, 0) });
    } catch (e) {
      failed.push(source);
      logLine('error', 'tiering failed', { source, error: (e as Error).name, reason: (e as Error).message });
    }
  }
  if (failed.length > 0) throw new Error(`tiering failed for ${failed.join(', ')} (see the log lines before this one)`);
  return { sources };
}
