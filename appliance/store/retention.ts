// Retention: a local copy goes only after every destination confirmed it and the retention time
// has passed since. Nothing held, queued or dead-lettered is ever touched.
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import type { Store } from './store.ts';

export interface RetentionReport {
  purged: number;
  bytes: number;
}

export async function sweepCommitted(store: Store, retentionMs: number, log: Logger, now = Date.now()): Promise<RetentionReport> {
  const report: RetentionReport = { purged: 0, bytes: 0 };
  const derivedRoot = join(store.dataDir, 'derived');
  const syntaxes = await readdir(derivedRoot).catch(() => [] as string[]);
  for (const id of await store.idsInState('committed', 100_000)) {
    const record = await store.get(id);
    if (!record || record.state !== 'committed' || record.purgedAt) continue;
    if (now - Date.parse(record.updatedAt) < retentionMs) continue;
    const files = [join(store.dataDir, record.path), ...syntaxes.map((s) => join(derivedRoot, s, record.contentHash.slice(0, 2), `${record.contentHash}.dcm`))];
    for (const f of files) {
      await unlink(f).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    await store.markPurged(id);
    report.purged++;
    report.bytes += record.size;
  }
  if (report.purged > 0) log.info(report, 'retention removed local copies of committed instances');
  return report;
}
