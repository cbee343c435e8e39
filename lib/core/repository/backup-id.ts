import { randomBytes } from 'node:crypto';
import { UsageError } from '../errors';
import { echoInput } from '../format';

/**
 * Backup ids sort by time as plain strings (so do storage listings): the UTC start time to the
 * millisecond, then a random suffix so two workers starting together never collide.
 *   20261124T075740.123Z-3f9a1c
 */
const ID = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$/;

export function newBackupId(at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/[-:]/g, ''); // 20261124T075740.123Z
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

/** `20261124T075740.123Z-3f9a1c` → 2026-11-24T07:57:40.123Z. */
export function idStart(id: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z/.exec(id)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`;
}

export function isBackupId(value: string): boolean {
  return ID.test(value);
}

export function parseBackupId(value: string): string {
  if (!isBackupId(value)) {
    throw new UsageError(`'${echoInput(value)}' is not a backup id (expected e.g. 20261124T075740.123Z-3f9a1c; see tidemark list)`);
  }
  return value;
}
