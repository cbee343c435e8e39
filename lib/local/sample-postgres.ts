import { connectPg, parsePostgresUrl, PgToolSession } from '../core/engines/postgres/connection';
import { pgBin } from '../core/engines/postgres/tools';
import { runTool } from '../core/process/tool';

/**
 * Sample data for demos, tests and drills: pgbench's tables plus the content that breaks naive
 * backup tools — large objects, bytea, jsonb, arrays, an enum, a partitioned table, a materialized
 * view, sequences far from their start, non-ASCII identifiers and TOASTed rows.
 */
export interface SampleOptions {
  /** pgbench scale (100,000 accounts each); 0 skips pgbench. */
  readonly pgbenchScale?: number;
  /** Megabytes of incompressible TOASTed text. */
  readonly toastMegabytes?: number;
}

const AWKWARD_SCHEMA = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ecstatic');
CREATE SCHEMA "ledger-ü";
CREATE TABLE "ledger-ü"."Überweisung" (
  "ключ" bigint PRIMARY KEY,
  "名前" text NOT NULL,
  mood mood NOT NULL,
  amount numeric(14, 2) NOT NULL,
  tags text[] NOT NULL,
  doc jsonb NOT NULL,
  payload bytea NOT NULL
);
CREATE INDEX ON "ledger-ü"."Überweisung" USING gin (doc);
INSERT INTO "ledger-ü"."Überweisung"
SELECT g, 'naïve ' || g || ' 日本 ' || md5(g::text), (enum_range(NULL::mood))[1 + g % 4], g * 1.25,
       ARRAY['a' || g, 'b,c', 'd"e', NULL],
       jsonb_build_object('n', g, 'nested', jsonb_build_object('ok', g % 2 = 0), 'list', jsonb_build_array(g, 'x')),
       decode(md5(g::text) || md5((g + 1)::text), 'hex')
  FROM generate_series(1, 5000) g;

CREATE TABLE measurements (id bigserial, taken date NOT NULL, value double precision) PARTITION BY RANGE (taken);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements (taken, value)
SELECT date '2025-01-01' + (g % 700), sin(g) FROM generate_series(1, 20000) g;
CREATE MATERIALIZED VIEW daily_measurements AS
  SELECT taken, count(*) AS n, round(sum(value)::numeric, 6) AS total FROM measurements GROUP BY taken;

CREATE SEQUENCE invoice_number START 1000;
SELECT setval('invoice_number', 424242);

CREATE TABLE documents (id int PRIMARY KEY, title text, body text);
CREATE TABLE attachments (id int PRIMARY KEY, name text, blob oid);
`;

export async function loadSampleData(url: string, options: SampleOptions = {}): Promise<void> {
  const scale = options.pgbenchScale ?? 1;
  const toastMb = options.toastMegabytes ?? 5;
  const ep = parsePostgresUrl(url, 'sample database');
  if (scale > 0) {
    const session = await PgToolSession.open(ep);
    try {
      await runTool(pgBin('pgbench'), ['-i', '-q', '-s', String(scale)], { env: session.env });
    } finally {
      await session.close();
    }
  }
  const client = await connectPg(ep, 'sample database');
  try {
    await client.query(AWKWARD_SCHEMA);
    // ~100 KiB of hex per row: random, so TOAST cannot compress it and stores it out of line.
    const rows = Math.max(1, Math.round((toastMb * 1024) / 100));
    await client.query(
      `INSERT INTO documents
       SELECT g, 'doc ' || g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 3200) i)
         FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await client.query(
      `INSERT INTO attachments
       SELECT g, 'file-' || g || '.bin', lo_from_bytea(0, decode(repeat(md5(g::text), 2000), 'hex')) FROM generate_series(1, 20) g`,
    );
    await client.query('ANALYZE');
  } finally {
    await client.end();
  }
}
