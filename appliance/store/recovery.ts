// After an unclean stop (power cut, kill -9) the object files are the truth: each was fsynced
// before its sender heard "success", while the index is written without waiting for the disk.
// Recovery finds stored files no record points to and indexes them again; a file whose bytes do
// not match its name (a write torn by the power cut, never acknowledged) goes to quarantine.
import { readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import { inspectFile } from '../../shared/storage/inspector.ts';
import type { Quarantine } from './quarantine.ts';
import type { Store } from './store.ts';

export interface RecoveryReport {
  scanned: number;
  reindexed: number;
  quarantined: number;
}

export async function recoverOrphans(store: Store, quarantine: Quarantine, log: Logger): Promise<RecoveryReport> {
  const known = await store.contentHashes();
  const report: RecoveryReport = { scanned: 0, reindexed: 0, quarantined: 0 };
  const objects = join(store.dataDir, 'objects');
  for (const shard of await readdir(objects)) {
    for (const name of await readdir(join(objects, shard))) {
      report.scanned++;
      const hash = name.replace(/\.dcm$/, '');
      if (known.has(hash)) continue;
      const relPath = join('objects', shard, name);
      const path = join(store.dataDir, relPath);
      let inspection;
      try {
        inspection = await inspectFile(path);
      } catch (err) {
        inspection = { contentHash: '', problem: (err as Error).message, size: 0 };
      }
      if (inspection.header && inspection.contentHash === hash) {
        await store.adopt(relPath, { header: inspection.header, contentHash: hash, size: inspection.size });
        report.reindexed++;
      } else {
        const reason = `recovery: stored file does not match its content hash (${inspection.problem ?? 'bytes differ'}); it was never acknowledged`;
        await quarantine.add(path, { reason, source: { kind: 'recovery', path: relPath }, size: inspection.size });
        report.quarantined++;
      }
    }
  }
  log.warn(report, 'recovered after an unclean stop');
  return report;
}

const CLEAN_MARKER = 'clean-stop';
const STORE_ENTRIES: ReadonlySet<string> = new Set(['index', 'objects']);

/** Whether the last run stopped cleanly; removes the marker so a crash from now on is noticed. */
export async function consumeCleanMarker(dataDir: string): Promise<boolean> {
  const marker = join(dataDir, CLEAN_MARKER);
  // Never held a store: nothing to recover, whatever else lives there (config/, log/, the agent's
  // identity, an ext4 lost+found — a box's data partition on its first boot).
  const fresh = !(await readdir(dataDir)).some((name) => STORE_ENTRIES.has(name));
  try {
    await unlink(marker);
  } catch {
    return fresh;
  }
  await fsyncPath(dataDir);
  return true;
}

export async function markCleanStop(dataDir: string): Promise<void> {
  await writeFile(join(dataDir, CLEAN_MARKER), new Date().toISOString());
  await fsyncPath(dataDir);
}
