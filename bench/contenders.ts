/**
 * The contenders of the logical-backup benchmark: their names (which the report and the targets
 * key on) and the tool flags the floors share with tidemark.
 */

/** The tidemark CLI as `npm run build` ships it (dist/tidemark.js, lib/local/cli-bundle.ts), run by this node. */
export const CLI = 'tidemark CLI';
/**
 * What a scheduled backup on AWS runs: the Fargate worker (containers/worker/main.ts) bundled by
 * esbuild with the Dockerfile's flags, on Node 22 (the image's runtime), with the same config.
 */
export const WORKER = 'tidemark worker (Node 22)';
/** `--baseline <dir>`: the CLI of another checkout, as its own package.json's bin names it. */
export const BASELINE = 'baseline CLI';

/** The reference a user compares with: one file, pg_dump's own compression. */
export const PG_DUMP = 'pg_dump -Fc';
export const PG_RESTORE = 'pg_restore';

/**
 * The floor: what tidemark runs, minus tidemark: the same pg_dump flags piped into the same zstd
 * command at the same level, in a shell. The gap between it and tidemark is what tidemark's own
 * process adds (start-up, key check, encryption, checksums, manifest). At other levels it shows
 * what a different default would cost and store.
 */
export function floorBackup(level: number): string {
  return `floor: pg_dump -Z0 | zstd -${level}`;
}
export const FLOOR_RESTORE = 'floor: zstd -d | pg_restore -1';

/** The node processes: peak RSS, node CPU and start-up are theirs. */
export const NODE_CONTENDERS: readonly string[] = [CLI, WORKER, BASELINE];
/** The contenders the targets hold to. */
export const TIDEMARK_BACKUPS: readonly string[] = [CLI, WORKER];

/** What tidemark runs (lib/core/engines/postgres/logical-*.ts, lib/core/pipeline/zstd.ts), by hand. */
export const PG_DUMP_ARGS = ['--format=custom', '--compress=0', '--no-password'];
export const PG_RESTORE_ARGS = ['--single-transaction', '--exit-on-error', '--no-tablespaces', '--no-password'];
export function zstdArgs(level: number): string[] {
  return ['-q', '-c', '-T0', `-${level}`];
}
