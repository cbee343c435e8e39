/**
 * The contenders of the MySQL/MariaDB benchmark (bench/mysql-logical.ts): their names, which the
 * report and the targets key on, and what one run records.
 */
import type { Sample } from './samples';

export const MYSQL_CONTENDERS = {
  /** The tidemark CLI as `npm run build` ships it, run by this node. */
  cli: 'tidemark CLI',
  /** The floor: the dump tool tidemark runs, with its flags, into zstd -T0 at tidemark's level, in a shell. */
  floor: (level: number) => `floor: mariadb-dump | zstd -T0 -${level}`,
  floorRestore: 'floor: zstd -d | mariadb',
  plainDump: 'mariadb-dump > dump.sql',
  plainRestore: 'mariadb < dump.sql',
  mydumper: 'mydumper -t 2',
  myloader: 'myloader -t 2',
  /** tidemark restore --position: the dump, then the archived binlog replayed to the target. */
  pitr: 'tidemark CLI PITR (--position)',
} as const;

export interface MysqlSample extends Sample {
  /** PITR only: seconds from the "replaying the binlog" note to the end. */
  readonly replaySeconds?: number;
  /** PITR only: binlog events between the dump's coordinates and the target. */
  readonly events?: number;
}

export interface MysqlSizeInfo {
  /** Rows in `orders` (the sample's big table). */
  readonly rows: number;
  readonly databaseBytes: number;
  readonly loadSeconds: number;
  readonly pitrEvents: number;
  readonly pitrRows: number;
}

export interface MysqlBenchResult {
  readonly facts: {
    readonly date: string;
    readonly cpuModel: string;
    readonly cores: number;
    readonly ramBytes: number;
    readonly kernel: string;
    readonly server: string;
    readonly dump: string;
    readonly mydumper: string;
    readonly zstd: string;
    readonly node: string;
    readonly commit: string;
    readonly loadBefore: string;
    readonly loadAfter?: string;
  };
  readonly runs: number;
  readonly level: number;
  readonly noteBytes: number;
  readonly sizes: readonly MysqlSizeInfo[];
  readonly samples: readonly MysqlSample[];
  /** Wall time of the whole run, set-up included. */
  readonly seconds: number;
}
