import { z } from 'zod';
import type { SourceConfig } from '../config/schema';
import { UsageError } from '../errors';
import type { BackupType } from './backup-types';
import type { RestoreTarget } from './engine';
import { mysqlLogical } from './mysql/registration';
import { pgPhysical } from './postgres/physical/registration';
import { pgLogical } from './postgres/registration';
import { rdsSnapshot } from './rds/registration';
import type { MethodRegistration } from './registration';

/**
 * The engine registry: commands, the worker, the deployment plan and the config schema ask it what
 * a source can do. A new method is a folder with a registration and one entry in each list below.
 * Order matters where several methods accept a source: the first one's schedule is the default.
 */
export const REGISTRATIONS = [rdsSnapshot, pgLogical, pgPhysical, mysqlLogical] as const;

/** Every manifest's `details`, by method id (validated on read: repository/manifest.ts). */
export const BackupDetailsSchema = z.discriminatedUnion('kind', [rdsSnapshot.details, pgLogical.details, pgPhysical.details, mysqlLogical.details]);
export type BackupDetails = z.infer<typeof BackupDetailsSchema>;
export type MethodId = (typeof REGISTRATIONS)[number]['id'];

type Registration = MethodRegistration<MethodId>;
const ALL: readonly Registration[] = REGISTRATIONS;

/** The method that wrote a manifest (`details.kind`). */
export function registrationOf(kind: MethodId): Registration {
  return ALL.find((m) => m.id === kind)!;
}

export function methodsFor(config: SourceConfig): readonly Registration[] {
  return ALL.filter((m) => m.accepts(config));
}

/** Backup types some method of this source takes, in declaration order of the methods. */
export function availableTypes(config: SourceConfig): readonly BackupType[] {
  return [...new Set(methodsFor(config).flatMap((m) => m.types))];
}

function sourceLabel(source: string, config: SourceConfig): string {
  return `source '${source}' (${config.engine}${config.rds ? ' on RDS' : ''})`;
}

function available(config: SourceConfig): string {
  const methods = methodsFor(config);
  return methods.length === 0 ? 'none in this version' : methods.map((m) => m.summary).join(', ');
}

/** The method that takes `type` backups of this source; the error lists what does exist. */
export function backupMethod(source: string, config: SourceConfig, type: BackupType): Registration {
  const method = methodsFor(config).find((m) => m.types.includes(type));
  if (!method) {
    throw new UsageError(`${type} backups of ${sourceLabel(source, config)} are not available (available: ${available(config)})`);
  }
  return method;
}

/** The method that restores this source into a target of this kind. */
export function restoreMethod(source: string, config: SourceConfig, into: RestoreTarget['kind']): Registration {
  const method = methodsFor(config).find((m) => m.restoresInto.includes(into));
  if (!method) {
    const can = methodsFor(config).filter((m) => m.restoresInto.length > 0);
    const where = into === 'database' ? 'a database URL' : 'a data directory';
    throw new UsageError(
      `${sourceLabel(source, config)} cannot be restored into ${where} by this version` +
        (can.length > 0 ? ` (its ${can.map((m) => m.summary).join(', ')} backups restore into ${can.flatMap((m) => m.restoresInto).join(', ')})` : ''),
    );
  }
  return method;
}

/** The schedules a source gets when its config names none: those of its first method. */
export function defaultSchedule(config: SourceConfig): Readonly<Partial<Record<BackupType, string>>> {
  return methodsFor(config)[0]?.defaultSchedule ?? {};
}

/** Why a scheduled type cannot run, or undefined when a method takes it (config and deployment checks). */
export function unavailableReason(config: SourceConfig, type: BackupType): string | undefined {
  if (methodsFor(config).some((m) => m.types.includes(type))) return undefined;
  return `${type} backups of ${config.engine}${config.rds ? ' RDS' : ''} sources are not available in this version (available: ${available(config)})`;
}
