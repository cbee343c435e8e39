import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { runBackup } from '../../lib/core/commands/backup';
import { runList } from '../../lib/core/commands/list';
import { DRILL_REPORT_FORMAT, drillReportKey, type DrillReport } from '../../lib/core/drill/report';
import { silentProgress } from '../../lib/core/progress';
import { openStore } from '../../lib/core/repository/open-store';
import { gatherReport } from '../../lib/core/commands/report';
import { renderReport } from '../../lib/core/report/render';
import { totalCost } from '../../lib/core/report/storage';
import { useS3 } from '../harness/s3';
import { usePostgres } from '../harness/postgres';
import { runCli, useTempDir, writeConfig } from '../harness/tidemark';

/**
 * `tidemark report` end to end: real logical backups of a throwaway PostgreSQL in a folder
 * repository, drill reports written beside them, the CLI as a process, and the page opened in
 * headless Chromium (Debian's package, driven by playwright-core): charts drawn, visible, with the
 * expected marks, and not one request beyond the file itself. Set TIDEMARK_SCREENSHOT_DIR to keep
 * the screenshot.
 */
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];

/** Width and height from a PNG's IHDR chunk. */
function pngSize(path: string): { width: number; height: number } {
  const b = readFileSync(path);
  expect(b.subarray(1, 4).toString('latin1')).toBe('PNG');
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe('tidemark report', () => {
  const pg = usePostgres({ databases: ['app'] });
  const tmp = useTempDir('tidemark-report-');
  let configPath: string;
  const backupIds: string[] = [];
  let drills: DrillReport[] = [];
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    await pg.sql('CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 2000) g;', 'app');
    const written = writeConfig(tmp.path, 'tidemark.yaml', {
      repository: `file://${tmp.path}/repo`,
      encryption: { key: 'env:TIDEMARK_TEST_KEY' },
      sources: {
        app: { engine: 'postgres', url: pg.url('app'), rto: '2m', rpo: '1h' },
        // Configured, never backed up: the page must still render it (an empty history).
        shop: { engine: 'mysql', url: 'mysql://backup@127.0.0.1:1/shop' },
      },
    });
    configPath = written.path;
    const config = written.config;
    for (let i = 0; i < 3; i++) {
      await pg.sql(`INSERT INTO orders SELECT g, 'batch ${i}' FROM generate_series(${3000 + i * 1000}, ${3999 + i * 1000}) g;`, 'app');
      backupIds.push((await runBackup(config, 'app', { type: 'logical', progress: silentProgress })).id);
    }
    // Drill reports as the drill writes them: four passed, one failed with hostile text in a check;
    // each restored a backup's point, where the timeline marks it.
    const store = openStore(config.repository);
    const points = new Map((await runList(config, 'app')).backups.map((b) => [b.id, b.restorePoint]));
    const start = Date.now() - 4 * 3_600_000;
    drills = [0, 1, 2, 3, 4].map((n): DrillReport => {
      const startedAt = new Date(start + n * 3_600_000).toISOString();
      const failed = n === 3;
      return {
        format: DRILL_REPORT_FORMAT,
        id: `${startedAt.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-00000${n}`,
        source: 'app',
        engine: 'postgres',
        method: 'logical',
        kind: 'restore',
        target: { kind: 'latest' },
        backupId: backupIds[Math.min(n, 2)],
        restoredPoint: points.get(backupIds[Math.min(n, 2)])!,
        startedAt,
        finishedAt: new Date(Date.parse(startedAt) + 60_000).toISOString(),
        ok: !failed,
        ...(failed ? { error: 'assertion orders: expected 5000' } : { rtoSeconds: 40 + n * 25, rpoSeconds: 10 + n * 5 }),
        rtoObjectiveSeconds: 120,
        rpoObjectiveSeconds: 3600,
        checks: [
          { name: 'recorded checksums', ok: true, detail: '1 table, 5,000 rows match' },
          { name: 'assertion: orders', ok: !failed, detail: failed ? 'got <script>alert("x")</script>, expected 5000' : '5000' },
        ],
        cleanedUp: true,
      };
    });
    for (const d of drills) await store.put(drillReportKey('app', d.id), Buffer.from(JSON.stringify(d)));
  });

  // The browser's profile lives apart from the test's temp dir: jest may remove that one first.
  let profile: string | undefined;
  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function open(path: string): Promise<{ page: Page; requests: string[] }> {
    profile = mkdtempSync(join(tmpdir(), 'tidemark-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 900 },
      offline: true,
    });
    const page = await context.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(path).href, { waitUntil: 'load' });
    return { page, requests };
  }

  /** Every element matching `selector` inside the chart is rendered with a non-zero box inside the chart's box. */
  async function visibleMarks(page: Page, chart: string, selector: string): Promise<number> {
    const svg = page.locator(`#source-app svg[data-chart="${chart}"]`);
    await expect(svg.isVisible()).resolves.toBe(true);
    const frame = (await svg.boundingBox())!;
    expect(frame.width).toBeGreaterThan(200);
    expect(frame.height).toBeGreaterThan(50);
    const marks = svg.locator(selector);
    const n = await marks.count();
    for (let i = 0; i < n; i++) {
      const box = (await marks.nth(i).boundingBox())!;
      expect(box).not.toBeNull();
      expect(box.width * box.height).toBeGreaterThan(0);
      expect(box.x).toBeGreaterThanOrEqual(frame.x - 1);
      expect(box.x + box.width).toBeLessThanOrEqual(frame.x + frame.width + 1);
      expect(box.y).toBeGreaterThanOrEqual(frame.y - 1);
      expect(box.y + box.height).toBeLessThanOrEqual(frame.y + frame.height + 1);
    }
    return n;
  }

  it('writes one page for every source that Chromium shows with its charts and nothing fetched', async () => {
    const out = join(tmp.path, 'report.html');
    const result = await runCli(['-c', configPath, 'report', '--out', out]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(new RegExp(`^wrote ${out} \\([\\d.]+ KiB\\): app 3 backups, 5 drills; shop 0 backups, 0 drills\\n$`));

    const { page, requests } = await open(out);
    const shotDir = process.env.TIDEMARK_SCREENSHOT_DIR ?? tmp.path;
    mkdirSync(shotDir, { recursive: true });
    const shot = join(shotDir, 'tidemark-report.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    expect(pngSize(shot).width).toBe(1200);
    expect(pngSize(shot).height).toBeGreaterThan(900);

    // The timeline: a bar per backup in the logical lane, each restore point on the window lane.
    expect(await visibleMarks(page, 'timeline', 'rect.backup-logical')).toBe(3);
    expect(await visibleMarks(page, 'timeline', 'circle.restore-point')).toBe(3);
    expect(await visibleMarks(page, 'timeline', 'rect.window-points')).toBe(1);
    expect(await visibleMarks(page, 'timeline', 'path.drill-mark.ok')).toBe(4);
    expect(await visibleMarks(page, 'timeline', 'path.drill-mark.failed')).toBe(1);
    // Storage: one chain per logical backup and a row for the drill reports, all standard in a folder.
    expect(await visibleMarks(page, 'storage', 'rect.tier-standard')).toBe(4);
    expect(await page.locator('#source-app svg[data-chart="storage"] text.row-label').allTextContents()).toEqual([...backupIds.map((id) => `logical ${id}`), 'other']);
    expect(await visibleMarks(page, 'storage', 'rect.tier-warm, rect.tier-cold')).toBe(0);
    // Drills: four measured points and one failure mark per chart, and the objectives as lines.
    expect(await visibleMarks(page, 'rto', 'circle.drill-point')).toBe(4);
    expect(await visibleMarks(page, 'rto', 'path.drill-failed-mark')).toBe(1);
    expect(await visibleMarks(page, 'rto', 'line.objective')).toBe(1);
    expect(await visibleMarks(page, 'rpo', 'circle.drill-point')).toBe(4);
    expect(await visibleMarks(page, 'rpo', 'line.objective')).toBe(1);
    // 40+75 s against a 2 min objective: the last measured drill is over it.
    expect(await page.locator('#source-app svg[data-chart="rto"] circle.over').count()).toBe(1);
    expect(await page.locator('#source-app table.drills tbody tr').count()).toBe(5);

    // The window is `tidemark list`'s own; the hostile check detail is text, not a script.
    const list = JSON.parse((await runCli(['-c', configPath, '--json', 'list', 'app'])).stdout) as { window: { from: string; to: string } };
    const text = await page.locator('#source-app').innerText();
    expect(text).toContain(`Restorable from ${list.window.from.slice(0, 19).replace('T', ' ')} UTC to ${list.window.to.slice(0, 19).replace('T', ' ')} UTC`);
    expect(text).toContain('got <script>alert("x")</script>, expected 5000');
    expect(await page.locator('script').count()).toBe(0);
    await expect(page.locator('#source-shop').innerText()).resolves.toContain('No backups yet.');

    expect(requests).toEqual([pathToFileURL(out).href]);
    await context?.close();
    context = undefined;
  });

  it('one source, --json: the page holds only that source; an unknown source fails before anything is written', async () => {
    const out = join(tmp.path, 'app.html');
    const result = await runCli(['-c', configPath, '--json', 'report', 'app', '-o', out]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ path: out, bytes: statSync(out).size, sources: [{ name: 'app', backups: 3, drills: 5 }] });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<title>Tidemark report: app</title>');
    expect(html).not.toContain('id="source-shop"');

    const unknown = await runCli(['-c', configPath, 'report', 'nope', '-o', join(tmp.path, 'nope.html')]);
    expect([unknown.code, unknown.stderr.trim()]).toEqual([2, "tidemark: unknown source 'nope' (configured: app, shop)"]);
    expect(existsSync(join(tmp.path, 'nope.html'))).toBe(false);

    const nowhere = join(tmp.path, 'no-such-dir', 'r.html');
    const unwritable = await runCli(['-c', configPath, 'report', '-o', nowhere]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr.trim()).toMatch(new RegExp(`^tidemark: cannot write the report to ${nowhere}: ENOENT`));
  });

  describe('from an S3 repository', () => {
    const s3 = useS3();

    it('lists, sizes and reads drills there the same way: every object of the source counted once, STANDARD as S3 reports it', async () => {
      const onS3 = writeConfig(tmp.path, 's3.yaml', {
        repository: s3.repository('reports'),
        encryption: { key: 'env:TIDEMARK_TEST_KEY' },
        sources: { app: { engine: 'postgres', url: pg.url('app') } },
      }).config;
      const { id } = await runBackup(onS3, 'app', { type: 'logical', progress: silentProgress });
      await openStore(onS3.repository).put(drillReportKey('app', drills[0].id), Buffer.from(JSON.stringify({ ...drills[0], backupId: id })));
      await openStore(onS3.repository).put('app/drills/broken.json', Buffer.from('{ not json'));

      const model = await gatherReport(onS3, undefined);
      const [app] = model.sources;
      expect(app.error).toBeUndefined();
      expect(app.list).toEqual(await runList(onS3, 'app'));
      expect(app.drills.map((d) => d.backupId)).toEqual([id]);
      expect(app.drillProblems).toEqual([expect.stringMatching(/^drill report app\/drills\/broken\.json: not JSON/)]);
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'reports/app/' }));
      const bucketBytes = (listed.Contents ?? []).reduce((n, o) => n + (o.Size ?? 0), 0);
      expect(totalCost(app.storage!).bytes).toBe(bucketBytes);
      expect(Object.keys(app.storage!.chains[0].bytes)).toEqual(['STANDARD']);
      expect(renderReport(model)).toContain(`data-id="${id}"`);
    });
  });
});
