import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { throwIfAborted } from '../../../abort';
import { ToolFailed, UsageError } from '../../../errors';
import { lookupOsUser, type OsUser } from '../../../process/os-user';
import { runTool } from '../../../process/tool';
import { childEnv } from '../../../secrets';
import { startPostmaster, stopPostmaster } from '../postmaster';

/** How a restored data directory is started (--start). */
export interface StartOptions {
  readonly port: number;
  /** The OS user that owns the data directory and runs the server when tidemark runs as root. @default 'postgres' */
  readonly osUser?: string;
  /** A drill's server (makeThrowaway done): THROWAWAY_SETTINGS at every start. @default false */
  readonly throwaway?: boolean;
}

export interface StartClusterOptions extends StartOptions {
  /**
   * postgresql.auto.conf settings written before the start (PITR adds restore_command and the
   * recovery target here). Later lines win, so these override the source's configuration.
   */
  readonly settings?: Readonly<Record<string, string | number>>;
  /** Also write recovery.signal (archive recovery, for PITR). @default false */
  readonly recoverySignal?: boolean;
  /** @default 'localhost' - the source's listen_addresses may name an address this host lacks */
  readonly listenAddresses?: string;
  /** Seconds to wait for the server to accept connections. @default 600 */
  readonly timeoutSeconds?: number;
  readonly signal?: AbortSignal;
}

export interface RestoredCluster {
  readonly dataDir: string;
  readonly port: number;
  /** Where the server's log goes. */
  readonly logFile: string;
  stop(): Promise<void>;
}

const VERSIONED_ROOT = '/usr/lib/postgresql';

/**
 * A drill's restored cluster is a throwaway: no TCP (the socket in its data directory only), and
 * fsync off, which also spares recovery's start its fsync of every file restored (a restore for
 * keeps does that), and its checkpoints their flushes. The checks read the data; none of this
 * changes it.
 *
 * shared_buffers 16MB: the server that replayed the WAL is the one checked, and a pool that replay
 * left full of the table's pages made pg_amcheck's heap pass slower than reading them through its
 * small ring again (pgbench scale 50 after 15 segments of WAL, by hand: verify_heapam of
 * pgbench_accounts 0.52-0.56 s with the default 128MB, 0.37-0.39 s with 16MB, 0.39 s after a
 * restart emptied the pool; the replay itself 4.9-5.4 → 4.7 s, its end-of-recovery checkpoint
 * writing 16 MB instead of 128). The files are in the OS's page cache either way.
 */
export const THROWAWAY_SETTINGS: Readonly<Record<string, string>> = { listen_addresses: '', fsync: 'off', synchronous_commit: 'off', autovacuum: 'off', shared_buffers: '16MB' };

/**
 * Makes a restored data directory a throwaway's before its first start: its socket (in the data
 * directory, mode 0700, the server's user) is trusted and nothing else is; the source's rules stay
 * as comments. Every start then passes THROWAWAY_SETTINGS (StartOptions.throwaway).
 */
export async function makeThrowaway(dataDir: string): Promise<void> {
  const hba = join(dataDir, 'pg_hba.conf');
  const original = await readFile(hba, 'utf8').catch(() => '');
  await writeFile(hba, `# tidemark drill: only the socket in this data directory, nothing over TCP\nlocal all all trust\n# source's rules, unused:\n${original.replace(/^/gm, '# ')}\n`);
}

/**
 * The server binaries of a major version: a restored data directory runs only under its own
 * major. TIDEMARK_PG_BINDIR, when set, is taken as is.
 */
export function serverBinDir(major: number): string {
  const override = process.env.TIDEMARK_PG_BINDIR;
  const dir = override || join(VERSIONED_ROOT, String(major), 'bin');
  if (!existsSync(join(dir, 'postgres')) || !existsSync(join(dir, 'pg_ctl'))) {
    throw new ToolFailed(`--start needs the PostgreSQL ${major} server (postgres, pg_ctl) in ${dir}: install postgresql-${major}, or restore without --start`);
  }
  return dir;
}

/**
 * Refuses, before anything is written, a data directory the server's OS user could not reach: as
 * root, every existing directory above it must be searchable by that user (a 0700 temp folder is not).
 */
export async function checkServerCanReach(dataDir: string, osUser: string | undefined): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const user = osUserIds(osUser ?? 'postgres');
  for (let dir = dirname(dataDir); ; dir = dirname(dir)) {
    const info = await stat(dir).catch(() => undefined);
    if (info) {
      const searchable = info.uid === user.uid ? info.mode & 0o100 : info.gid === user.gid ? info.mode & 0o010 : info.mode & 0o001;
      if (!searchable) throw new UsageError(`--start: the OS user ${osUser ?? 'postgres'} cannot reach ${dataDir} (${dir} is mode ${(info.mode & 0o777).toString(8)}); restore under a directory it can enter`);
    }
    if (dir === dirname(dir)) return;
  }
}

export function osUserIds(name: string): OsUser {
  const ids = lookupOsUser(name);
  if (!ids) throw new UsageError(`--os-user ${name}: no such OS user (PostgreSQL refuses to run as root, so a root restore runs it as this user)`);
  return ids;
}

function confLine(key: string, value: string | number): string {
  if (!/^[a-z_][a-z0-9_.]*$/i.test(key)) throw new UsageError(`invalid PostgreSQL setting name: ${key}`);
  return `${key} = ${typeof value === 'number' ? value : `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`}\n`;
}

/**
 * Starts a restored data directory and waits until it accepts connections: PostgreSQL first replays
 * the WAL the backup carries (from backup_label's checkpoint to the backup's end) and reaches
 * consistency, or fails to start. As root, the directory is given to `osUser` and the server runs
 * as that user. Archiving is switched off: a restored copy must not push WAL into the source's
 * archive.
 */
export async function startRestoredCluster(dataDir: string, major: number, options: StartClusterOptions): Promise<RestoredCluster> {
  const bin = serverBinDir(major);
  const user = process.getuid?.() === 0 ? osUserIds(options.osUser ?? 'postgres') : undefined;
  throwIfAborted(options.signal);
  const settings: Record<string, string | number> = {
    port: options.port,
    listen_addresses: options.listenAddresses ?? 'localhost',
    unix_socket_directories: dataDir,
    archive_mode: 'off',
    ...(options.throwaway ? THROWAWAY_SETTINGS : {}),
    ...options.settings,
  };
  // A Debian-style source keeps its configuration in /etc, outside the data directory and the backup.
  if (!existsSync(join(dataDir, 'postgresql.conf'))) await writeFile(join(dataDir, 'postgresql.conf'), '# written by tidemark restore: the source kept its configuration outside the data directory\n');
  if (!existsSync(join(dataDir, 'pg_hba.conf'))) {
    await writeFile(join(dataDir, 'pg_hba.conf'), 'local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n');
  }
  await appendFile(join(dataDir, 'postgresql.auto.conf'), `\n# written by tidemark restore\n${Object.entries(settings).map(([k, v]) => confLine(k, v)).join('')}`);
  if (options.recoverySignal) await appendFile(join(dataDir, 'recovery.signal'), '');
  const logDir = join(dataDir, 'log');
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  const logFile = join(logDir, 'tidemark-restore.log');
  if (user) await runTool('chown', ['-R', `${user.uid}:${user.gid}`, dataDir]);
  const env = Object.fromEntries(Object.entries(childEnv()).filter(([k]) => !k.startsWith('PG')));
  try {
    await startPostmaster(bin, dataDir, { logFile, env, timeoutSeconds: options.timeoutSeconds ?? 600, ...(user ? { user } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  } catch (cause) {
    if (options.signal?.aborted) throw cause;
    const tail = (await readFile(logFile, 'utf8').catch(() => '')).trimEnd().split('\n').slice(-5).join(' | ');
    throw new ToolFailed(`the restored cluster in ${dataDir} did not start: ${tail || (cause as Error).message}`, { cause });
  }
  return {
    dataDir,
    port: options.port,
    logFile,
    stop: async () => {
      await stopPostmaster(dataDir, 'fast', { timeoutSeconds: 60 });
    },
  };
}
