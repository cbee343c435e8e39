import type { z } from 'zod';
import type { SourceConfig } from '../config/schema';
import type { BackupType } from './backup-types';
import type { BackupMethod, RestoreTarget } from './engine';

/**
 * What the registry knows of a method without loading it: enough for the config schema, the
 * deployment plan and error messages, so that `cdk synth` and `tidemark --help` never load pg,
 * the AWS SDK or an engine's code. `load()` brings the implementation on first use.
 */
export interface MethodRegistration<Kind extends string = string> {
  /** Stable id, also the manifest's `details.kind`: 'pg-logical', 'rds-snapshot', … */
  readonly id: Kind;
  /** For people: "logical (pg_dump)". */
  readonly summary: string;
  readonly types: readonly BackupType[];
  /** Where its backups restore to (restore dispatch: a URL or a data directory). */
  readonly restoresInto: readonly RestoreTarget['kind'][];
  accepts(config: SourceConfig): boolean;
  /** Schedules a source gets when its config names none, if this is the source's first method. */
  readonly defaultSchedule: Readonly<Partial<Record<BackupType, string>>>;
  /** The manifest `details` this method writes, validated on every read. */
  readonly details: z.ZodObject<{ kind: z.ZodLiteral<Kind> } & z.ZodRawShape>;
  /** Warnings a backup's `details` carry (damaged pages seen at backup time), for list and verify. */
  warnings?(details: { readonly kind: string }): readonly string[];
  load(): Promise<BackupMethod>;
}
