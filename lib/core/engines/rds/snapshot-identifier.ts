import { createHash } from 'node:crypto';

/**
 * RDS snapshot names: `tidemark-<source>-<yyyymmddhhmmss>`, the time taken from the backup id, so the
 * snapshot and the manifest that records it can always be matched (the tags say it exactly, too).
 *
 * RDS allows letters, digits and single hyphens, starting with a letter and not ending with a hyphen;
 * instance snapshots up to 255 characters, cluster snapshots up to 63. We keep to 63 for both.
 * RDS also folds case. A source name that has to change to fit (`App_1`, `app.1` → `app-1`) gets
 * a short hash of the real name, so two sources scheduled at the same second never collide.
 */
export const MAX_SNAPSHOT_IDENTIFIER = 63;

const PREFIX = 'tidemark-';

export function snapshotIdentifier(source: string, backupId: string): string {
  const stamp = /^(\d{8})T(\d{6})/.exec(backupId);
  if (!stamp) throw new Error(`not a backup id: ${backupId}`);
  const time = `${stamp[1]}${stamp[2]}`;
  const room = MAX_SNAPSHOT_IDENTIFIER - PREFIX.length - 1 - time.length;

  let name = source.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  if (name !== source || name.length > room) {
    const hash = createHash('sha256').update(source).digest('hex').slice(0, 6);
    name = `${name.slice(0, room - hash.length - 1).replace(/-+$/, '')}-${hash}`.replace(/^-/, '');
  }
  return `${PREFIX}${name}-${time}`;
}

/** True when `id` is a valid RDS (cluster) snapshot identifier. */
export function isSnapshotIdentifier(id: string): boolean {
  return id.length <= MAX_SNAPSHOT_IDENTIFIER && /^[a-zA-Z](?:[a-zA-Z0-9]|-(?!-))*$/.test(id) && !id.endsWith('-');
}
