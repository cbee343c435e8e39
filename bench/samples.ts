/**
 * What one benchmark run records, and the few ways the report and the targets read it: samples of
 * one scale and operation, medians per contender, per-round ratios.
 */
import type { CpuBreakdown } from './measure';
import { median } from './measure';

export type Operation = 'backup' | 'restore';

export interface Sample {
  readonly contender: string;
  readonly operation: Operation;
  readonly scale: number;
  readonly round: number;
  readonly seconds: number;
  /** CPU seconds by process group (node, zstd, pg_dump, server backend, …). */
  readonly cpu: CpuBreakdown;
  /** node contenders only: VmHWM of the node process, KiB. */
  readonly peakRssKb?: number;
  /** node contenders only: seconds from the node process's start to pg_dump (pg_restore) spawned. */
  readonly startupSeconds?: number;
  /** CLI contenders only: durations between their progress lines. */
  readonly phases?: Record<string, number>;
  /** backup only: bytes of the output (file, or the stored objects of a tidemark backup). */
  readonly outputBytes?: number;
  /** tidemark backup only: the dump's plaintext size. */
  readonly plainBytes?: number;
}

export interface ScaleInfo {
  readonly scale: number;
  readonly databaseBytes: number;
  readonly initSeconds: number;
}

export interface FunctionCost {
  readonly name: string;
  readonly seconds: number;
}

export interface Profile {
  readonly operation: Operation;
  readonly wallSeconds: number;
  readonly sampledSeconds: number;
  readonly top: readonly FunctionCost[];
}

export interface Facts {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly ramBytes: number;
  readonly kernel: string;
  readonly postgres: string;
  readonly pgDump: string;
  readonly zstd: string;
  /** The node that runs the CLI contenders (this harness's). */
  readonly node: string;
  /** The worker contender's node, or why it did not run. */
  readonly workerNode: string;
  readonly commit: string;
  /** The baseline checkout and its commit, when there is one. */
  readonly baseline?: string;
  readonly loadBefore: string;
  readonly loadAfter?: string;
}

export interface ScenarioResult {
  readonly facts: Facts;
  readonly runs: number;
  /** The zstd level tidemark ran with (its config's compression.level); the floor uses it too. */
  readonly level: number;
  /** Levels of the extra floor contenders, for choosing the default. */
  readonly floorLevels: readonly number[];
  readonly scales: readonly ScaleInfo[];
  /** `--help` of each CLI contender, in seconds, interleaved runs. */
  readonly helpSeconds: Readonly<Record<string, readonly number[]>>;
  readonly samples: readonly Sample[];
  readonly profiles: readonly Profile[];
}

export function select(samples: readonly Sample[], scale: number, operation: Operation, contender?: string): Sample[] {
  return samples.filter((s) => s.scale === scale && s.operation === operation && (contender === undefined || s.contender === contender));
}

export function contendersOf(samples: readonly Sample[]): string[] {
  return [...new Set(samples.map((s) => s.contender))];
}

/** Median of `value` over the contender's samples (those that have it); NaN when none do. */
export function medianOf(samples: readonly Sample[], contender: string, value: (s: Sample) => number | undefined = (s) => s.seconds): number {
  return median(samples.filter((s) => s.contender === contender).map(value).filter((v): v is number => v !== undefined));
}

/** The values of `value` over the contender's samples that have it. */
export function valuesOf(samples: readonly Sample[], contender: string, value: (s: Sample) => number | undefined): number[] {
  return samples.filter((s) => s.contender === contender).map(value).filter((v): v is number => v !== undefined);
}

/** Per-round ratio a/b of seconds (rounds where both ran), so a noisy round hits both sides of the ratio. */
export function pairedRatios(samples: readonly Sample[], a: string, b: string): number[] {
  const rounds = new Map<number, Record<string, number>>();
  for (const s of samples) rounds.set(s.round, { ...rounds.get(s.round), [s.contender]: s.seconds });
  return [...rounds.values()].filter((r) => r[a] !== undefined && r[b] !== undefined).map((r) => r[a] / r[b]);
}
