import { StorageError } from '../errors';
import type { ObjectStore } from '../repository/storage';
import { DRILL_REPORT_FORMAT, drillReportKey, drillsPrefix, type DrillReport } from './report';

/**
 * Drill reports in the repository: written once (the store's put never overwrites), read back
 * for the predicted RTO and the report page. A report is plain JSON: it holds no data, only
 * timings, names and check results.
 */
export async function writeDrillReport(store: ObjectStore, report: DrillReport): Promise<{ written: boolean }> {
  try {
    await store.put(drillReportKey(report.source, report.id), Buffer.from(`${JSON.stringify(report, null, 2)}\n`), { contentType: 'application/json' });
    return { written: true };
  } catch (e) {
    // Immutable: whoever wrote first (the worker, or the record step after it died) keeps the record.
    if (e instanceof StorageError && e.code === 'ObjectExists') return { written: false };
    throw e;
  }
}

/** The readable reports of a source (the newest `newest` of them, when given), oldest first (ids sort by time); unreadable ones are skipped. */
export async function readDrillReports(store: ObjectStore, source: string, options: { readonly newest?: number } = {}): Promise<DrillReport[]> {
  const { objects } = await store.list(drillsPrefix(source));
  const reports: DrillReport[] = [];
  const keys = objects.filter((x) => x.key.endsWith('.json')).sort((a, b) => a.key.localeCompare(b.key));
  for (const o of options.newest === undefined ? keys : keys.slice(-options.newest)) {
    try {
      const r = JSON.parse((await store.getBytes(o.key)).toString('utf8')) as DrillReport;
      if (r.format === DRILL_REPORT_FORMAT && r.source === source) reports.push(r);
    } catch {
      // a damaged report does not stop the next drill
    }
  }
  return reports;
}
