import type { Client } from 'pg';
import type { LogFields, LogLevel } from '../../../log';
import { connectPg, type PgEndpoint } from '../connection';
import { parseLsn } from './wal-names';

/**
 * A second physical slot that moves only when WAL is in the repository. pg_receivewal's own slot
 * advances as soon as a segment is flushed to the spool, so a streamer that dies with a completed
 * segment not yet uploaded and loses its spool (a replaced container) would find it recycled on
 * the server. This slot keeps the server holding everything after the archive's end, so a new
 * streamer resumes there without a gap. Best effort: if the server refuses (no privilege to use
 * slot functions, a standby that cannot advance slots), the streamer goes on without it and says so.
 */
export class ArchivedSlot {
  private client?: Client;
  private disabled = false;
  private position = 0n;

  constructor(
    private readonly ep: PgEndpoint,
    readonly name: string,
    private readonly log: (level: LogLevel, msg: string, fields?: LogFields) => void,
  ) {}

  /** Creates the slot (reserving WAL from now) if it does not exist. */
  async ensure(): Promise<void> {
    await this.query(
      `select pg_create_physical_replication_slot($1, true) where not exists (select 1 from pg_replication_slots where slot_name = $1)`,
      [this.name],
    );
  }

  /** Drops and creates the slot: after the WAL it held was lost anyway (a gap), it holds from now. */
  async recreate(): Promise<void> {
    await this.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and not active`, [this.name]);
    this.position = 0n;
    await this.ensure();
  }

  /** Lets the server recycle WAL before `lsn`: everything before it is archived. */
  async advance(lsn: string): Promise<void> {
    const target = parseLsn(lsn);
    if (target <= this.position) return;
    // Never past what the server has written (a slot cannot move beyond it).
    const done = await this.query(
      `select pg_replication_slot_advance($1, least($2::pg_lsn, case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_flush_lsn() end))`,
      [this.name, lsn],
    );
    if (done) this.position = target;
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  private async query(sql: string, params: unknown[]): Promise<boolean> {
    if (this.disabled) return false;
    // A connection from before a server restart or failover fails at its first query: one retry on
    // a new one, or the slot would not be created on the new server until the next reconnect.
    for (let attempt = 0; ; attempt++) {
      const reused = this.client !== undefined;
      try {
        this.client ??= await connectPg(this.ep, `slot ${this.name}`);
        await this.client.query(sql, params);
        return true;
      } catch (e) {
        await this.close();
        const code = (e as { code?: string }).code;
        // Not allowed (privilege) or not possible here: keep streaming without the guard.
        if (code === '42501' || code === '55000' || code === '0A000') {
          this.disabled = true;
          this.log('warn', `slot ${this.name} cannot be used (${(e as Error).message}); a streamer that loses its spool may leave a gap`, { error: 'ArchivedSlotUnavailable' });
          return false;
        }
        if (!(reused && attempt === 0 && !/^[0-9A-Z]{5}$/.test(code ?? ''))) return false;
      }
    }
  }
}
