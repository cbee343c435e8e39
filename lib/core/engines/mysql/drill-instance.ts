import { join } from 'node:path';
import type { TableChecksum, TableChecksums } from '../../drill/checksums';
import { templatesDirFor } from '../../drill/scratch';
import { startThrowawayMariadb, type ThrowawayMariadb } from '../../process/throwaway-mariadb';
import type { DrillDatabase, DrillInstance, DrillSupport } from '../engine';
import { selectBackup } from '../select-backup';
import { MysqlToolSession, parseMysqlUrl, quoteIdent, quoteLiteral } from './connection';
import { restoredMysqlChecksums } from './logical-checksums';
import { mysqlSource, sourceEndpoint } from './source';

/**
 * The drill side of MySQL/MariaDB logical backups (engine.ts DrillSupport): a fresh MariaDB server
 * (mariadb-install-db + mariadbd) in the drill's scratch directory, its binary log off (a restored
 * copy must write none), root over its own socket and loopback port only. The dump is restored into
 * it, with the archived binlog replayed after it when the target lies past the dump.
 */

const isMysqlLogical = (m: { details: { kind: string } }) => m.details.kind === 'mysql-logical';

/**
 * The drill's server only loads a dump and is checked: a redo log big enough that the load does not
 * stop for checkpoints (the throwaway default is 16 MiB, for quick installs). InnoDB resizes the
 * template's log at start (a copy of the template was up in 0.18 s with the resize, by hand; 256 MiB
 * more of the task's storage). By hand (a script timing
 * `tidemark restore` of one backup into servers with each setting, 2026-12-03, 1 M orders, 4
 * interleaved rounds): restore 7.13 s -> 6.63 s (medians; ranges 6.63-7.40 and 5.92-6.97).
 */
const MARIADB_DRILL_SETTINGS = { innodb_log_file_size: '256M' };

export const mysqlLogicalDrill: DrillSupport = {
  /** An RDS instance the drill state machine restored: as the source's user, its password resolved now, into the option file only. */
  async connect(run, endpoint) {
    const ep = await sourceEndpoint(run.source, mysqlSource(run.config));
    const session = await MysqlToolSession.open({ ...ep, host: endpoint.host, port: endpoint.port });
    // A snapshot's tables have a history: EXTENDED also looks for records left behind for purge.
    return new MysqlDrillDatabase(session, ep.database, true);
  },
  async reach(_run, catalog, at) {
    try {
      return selectBackup(catalog, at, '', { summary: 'logical (mysqldump)', accepts: isMysqlLogical }).restorePoint.time;
    } catch {
      // Past a dump's own point only the binlog reaches: planRestore decides whether it does.
      if (at.kind === 'time') return at.at;
      const newest = catalog.backups.filter(isMysqlLogical).pop();
      return newest?.restorePoint.time;
    }
  },
  async provision(run, _catalog, _at, scratchDir) {
    const database = parseMysqlUrl(mysqlSource(run.config).url, `sources.${run.source}.url`).database;
    const server = await startThrowawayMariadb({ dir: join(scratchDir, 'maria'), binlog: false, settings: MARIADB_DRILL_SETTINGS, templates: templatesDirFor(scratchDir) });
    return new MariadbInstance(server, database);
  },
};

class MariadbInstance implements DrillInstance {
  readonly target;

  constructor(
    private readonly server: ThrowawayMariadb,
    private readonly database: string,
  ) {
    this.target = { kind: 'database' as const, url: server.url(database) };
  }

  async open(): Promise<DrillDatabase> {
    const session = await MysqlToolSession.open({ host: '127.0.0.1', port: this.server.port, user: 'root', database: this.database });
    return new MysqlDrillDatabase(session, this.database, false);
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}

class MysqlDrillDatabase implements DrillDatabase {
  constructor(
    private readonly session: MysqlToolSession,
    private readonly database: string,
    /** CHECK TABLE … EXTENDED (see verify). */
    private readonly extended: boolean,
  ) {}

  /** Batch mode prints SQL NULL as the word NULL: read as null. */
  async scalar(sql: string): Promise<string | null> {
    const rows = await this.session.query(sql, 'drill assertion', this.database);
    const value = rows[0]?.[0];
    return value === undefined || value === 'NULL' ? null : value;
  }

  private async tables(): Promise<string[]> {
    const rows = await this.session.query(
      `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${quoteLiteral(this.database)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1`,
      'drill',
    );
    return rows.map((r) => r[0]);
  }

  /**
   * CHECK TABLE over every table: each must end with status OK. InnoDB validates every index's
   * B-tree (page links, key order) and that each index holds as many records as the clustered
   * index: what pg_amcheck checks on the PostgreSQL side (without --heapallindexed). EXTENDED
   * (MDEV-24402) adds a search for records left behind for purge: worth it on a restored snapshot
   * (RDS), which has a history; a database this drill has just loaded from a dump has none, and
   * there it would cost 6-10× as much (1 M orders: 2.0 s against 0.2-0.3 s, 2026-12-02).
   */
  async verify(): Promise<{ name: string; ok: boolean; detail: string }> {
    const tables = await this.tables();
    if (tables.length === 0) return { name: 'CHECK TABLE', ok: true, detail: `no tables in ${this.database}` };
    const rows = await this.session.query(`CHECK TABLE ${tables.map(quoteIdent).join(', ')}${this.extended ? ' EXTENDED' : ''}`, 'CHECK TABLE', this.database);
    const bad = rows.filter(([, , type, text]) => (type === 'status' && text !== 'OK') || type === 'error');
    return bad.length === 0
      ? { name: 'CHECK TABLE', ok: true, detail: `${tables.length} tables of ${this.database} OK${this.extended ? ' (EXTENDED)' : ''}` }
      : { name: 'CHECK TABLE', ok: false, detail: bad.slice(0, 3).map(([t, , type, text]) => `${t}: ${type} ${text}`).join('; ') };
  }

  /** The backup's hashing repeated on the restored copy (logical-checksums.ts). */
  checksums(recorded: TableChecksums): Promise<Record<string, TableChecksum>> {
    return restoredMysqlChecksums(this.session, this.database, recorded, this.database);
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
