import type { Client } from 'pg';
import { compareChecksums, CHECKSUM_METHOD_HASHTEXT, CHECKSUM_METHOD_MD5, type TableChecksums } from '../../lib/core/drill/checksums';
import { connectPg, parsePostgresUrl } from '../../lib/core/engines/postgres/connection';
import { ROW_TEXT_SETTINGS } from '../../lib/core/engines/postgres/fingerprint';
import { recordTableChecksums, restoredTableChecksums } from '../../lib/core/engines/postgres/logical-checksums';
import { usePostgres } from '../harness/postgres';

/**
 * PostgreSQL's recorded table checksums (drill/checksums.ts, postgres/logical-checksums.ts) on a
 * real server: what a backup records in its snapshot, a drill recomputes equal on the same data and
 * different on changed data, whole tables and key samples alike; and a record of the md5 method,
 * made by the SQL backups ran before the hashtext method, still checks.
 */
describe('PostgreSQL table checksums', () => {
  const pg = usePostgres();
  const ep = () => parsePostgresUrl(pg.url('sums'), 'checksums test');
  let client: Client;

  beforeAll(async () => {
    await pg.createDatabase('sums');
    await pg.sql(
      `create table whole (id int primary key, at timestamptz, f float8, n numeric, b bytea, j jsonb, t text);
       insert into whole select i, '2026-12-01T00:00:00Z'::timestamptz + i * interval '1 minute', i / 7.0, i * 1.10, decode(md5(i::text), 'hex'), jsonb_build_object('i', i), repeat('x', i % 50)
         from generate_series(1, 1000) i;
       create table sampled_int (id bigint primary key, v text);
       insert into sampled_int select i, md5(i::text) from generate_series(1, 20000) i;
       create table sampled_text (a text, b int, v text, primary key (a, b));
       insert into sampled_text select 'k' || (i % 97), i, md5(i::text) from generate_series(1, 20000) i;
       create table no_key (v text);
       insert into no_key select md5(i::text) from generate_series(1, 20000) i;`,
      'sums',
    );
    client = await connectPg(ep(), 'checksums test');
  }, 60_000);
  afterAll(() => client?.end());

  /** Records in an exported snapshot, as a backup does beside pg_dump; `exactBytes` small enough to sample, key ranges of about `sampleBytes`. */
  async function record(exactBytes = 256 * 1024, sampleBytes = 64 * 1024): Promise<TableChecksums> {
    const holder = await connectPg(ep(), 'snapshot holder');
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const { rows } = await holder.query<{ s: string }>('select pg_export_snapshot() as s');
      return await recordTableChecksums(ep(), rows[0].s, { exactBytes, sampleBytes });
    } finally {
      await holder.end();
    }
  }

  it('records hashtext sums, whole and on key samples, that the same data reproduces', async () => {
    const recorded = await record();
    expect(recorded.method).toBe(CHECKSUM_METHOD_HASHTEXT);
    expect(recorded.tables['public.whole']).toEqual({ rows: 1000, sum: expect.stringMatching(/^-?\d+$/) });
    // One integer key: key ranges read through the index, together about sampleBytes of the table.
    const ranged = recorded.tables['public.sampled_int'];
    expect(ranged.sample).toEqual({ key: ['id'], ranges: expect.any(Array) });
    const ranges = (ranged.sample as { ranges: [string, string][] }).ranges;
    expect(ranges).toHaveLength(16);
    expect(ranges[0][0]).toBe('1');
    const inRanges = ranges.reduce((n, [lo, hi]) => n + Number(hi) - Number(lo) + 1, 0);
    expect(ranged.rows).toBe(inRanges);
    expect(inRanges).toBeLessThan(20000 / 4);
    expect(recorded.tables['public.sampled_text'].sample).toEqual({ key: ['a', 'b'], modulus: expect.any(Number) });
    expect(recorded.tables['public.no_key']).toMatchObject({ rows: 20000, countOnly: expect.stringContaining('no primary key') });
    const again = await restoredTableChecksums(client, recorded);
    expect(compareChecksums(recorded.tables, again)).toMatchObject({ ok: true, exact: 1, sampled: 2, countOnly: 1 });
  });

  it('a changed value is a difference naming the table, in a whole table and in a sampled row', async () => {
    const recorded = await record();
    // A row inside the text key's sample: the predicate the drill uses picks it on both sides.
    const modulus = (recorded.tables['public.sampled_text'].sample as { modulus: number }).modulus;
    const { rows } = await client.query<{ a: string; b: number }>(
      `select a, b from sampled_text t where (hashtextextended(row(t.a, t.b, null)::text, 0) & ${modulus - 1}) = 0 limit 1`,
    );
    // `whole` has a column named t: the whole row is hashed, not that column (f is another).
    await client.query(`update whole set f = f + 1e-12 where id = 424`);
    await client.query(`update sampled_text set v = 'changed' where a = $1 and b = $2`, [rows[0].a, rows[0].b]);
    try {
      const differences = compareChecksums(recorded.tables, await restoredTableChecksums(client, recorded)).differences;
      expect(differences).toEqual([
        expect.stringMatching(/^public\.sampled_text: checksum of the 1\/\d+ sample differs/),
        expect.stringMatching(/^public\.whole: checksum differs/),
      ]);
    } finally {
      await client.query(`update whole set f = 424 / 7.0 where id = 424`);
      await client.query(`update sampled_text set v = md5(b::text) where a = $1 and b = $2`, [rows[0].a, rows[0].b]);
    }
  });

  it('key ranges: a row changed or deleted inside a range is a difference naming the table; one outside is not read', async () => {
    const recorded = await record();
    const [lo, hi] = (recorded.tables['public.sampled_int'].sample as { ranges: [string, string][] }).ranges[3];
    const inside = Number(lo) + 1;
    const outside = Number(hi) + 1; // between two ranges
    const check = async () => compareChecksums(recorded.tables, await restoredTableChecksums(client, recorded)).differences;
    await client.query(`update sampled_int set v = 'changed' where id = $1`, [outside]);
    try {
      expect(await check()).toEqual([]);
      await client.query(`update sampled_int set v = 'changed' where id = $1`, [inside]);
      expect(await check()).toEqual([expect.stringMatching(/^public\.sampled_int: checksum of the sampled key ranges differs/)]);
      await client.query(`delete from sampled_int where id = $1`, [inside]);
      expect(await check()).toEqual([`public.sampled_int: ${recorded.tables['public.sampled_int'].rows - 1} rows restored in the sampled key ranges, ${recorded.tables['public.sampled_int'].rows} recorded`]);
    } finally {
      await client.query(`insert into sampled_int values ($1::bigint, md5($1::bigint::text)) on conflict (id) do nothing`, [inside]);
      await client.query(`update sampled_int set v = md5(id::text) where id in ($1, $2)`, [inside, outside]);
    }
  });

  it('a record of the md5 method, made by the SQL of its time, still checks equal, and a change still shows', async () => {
    // What logical-checksums.ts ran before the hashtext method, kept here verbatim as the reference.
    await client.query(ROW_TEXT_SETTINGS);
    const md5Sum = async (table: string, where = 'true'): Promise<{ rows: number; sum: string }> => {
      const { rows } = await client.query(
        `select count(*)::text as n, coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric) filter (where ${where}), 0)::text as h from only public.${table} t`,
      );
      return { rows: Number(rows[0].n), sum: rows[0].h };
    };
    const old: TableChecksums = {
      method: CHECKSUM_METHOD_MD5,
      exactBytes: 256 * 1024,
      seconds: 0,
      tables: {
        'public.whole': await md5Sum('whole'),
        'public.sampled_int': { ...(await md5Sum('sampled_int', 't.id % 4 = 0')), sample: { key: ['id'], modulus: 4, by: 'value' } },
        'public.sampled_text': {
          ...(await md5Sum('sampled_text', `((('x' || substr(md5(row(t.a, t.b, null)::text), 1, 8))::bit(32)::int & 3) = 0)`)),
          sample: { key: ['a', 'b'], modulus: 4 },
        },
        'public.no_key': { rows: 20000, countOnly: 'larger than 262144 bytes and no primary key to sample by' },
      },
    };
    expect(compareChecksums(old.tables, await restoredTableChecksums(client, old))).toMatchObject({ ok: true, exact: 1, sampled: 2 });
    await client.query(`delete from whole where id = 1`);
    try {
      expect(compareChecksums(old.tables, await restoredTableChecksums(client, old)).differences).toEqual(['public.whole: 999 rows restored, 1000 recorded']);
    } finally {
      await client.query(`insert into whole select 1, '2026-12-01T00:01:00Z', 1 / 7.0, 1.10, decode(md5('1'), 'hex'), '{"i": 1}', 'x'`);
    }
  });

  it('a MariaDB record is refused on PostgreSQL with one line naming the method', async () => {
    const mariadb: TableChecksums = { method: 'row-crc32-crc32c-sum/1', exactBytes: 1, seconds: 0, tables: {} };
    await expect(restoredTableChecksums(client, mariadb)).rejects.toThrow(/made by row-crc32-crc32c-sum\/1, a MariaDB method/);
  });
});
