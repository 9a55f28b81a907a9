import { mkdtempSync, openSync, writeFileSync, existsSync } from 'node:fs';
import type { WrittenObject } from '../../../../shared/storage/object-writer.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { storeWritten, type IngestContext } from '../../../../appliance/ingest/intake.ts';
import { createMetrics } from '../../../../appliance/metrics.ts';
import { DiskGuard } from '../../../../appliance/store/disk-guard.ts';
import { Quarantine } from '../../../../appliance/store/quarantine.ts';
import { Store } from '../../../../appliance/store/store.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { DicomHeader } from '../../../../shared/types/store.ts';

const log = createLogger('silent');
let store: Store | undefined;
afterEach(async () => store?.close());

async function context(): Promise<IngestContext> {
  const dataDir = mkdtempSync(join(tmpdir(), 'intake-'));
  store = await Store.open({ dataDir, quietTimeMs: 1000, log });
  const config = { aeTitle: 'MBOX', checkCalledAe: true, allowedCallingAe: [], maxAssociations: 4, maxPduLength: 65536 };
  const disk = new DiskGuard({ path: dataDir, highWaterPercent: 100, minFreeBytes: 0, log });
  return { config, store, quarantine: new Quarantine(dataDir), disk, metrics: createMetrics(), log };
}

const header: DicomHeader = {
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  sopInstanceUid: '1.2.3.4',
  studyInstanceUid: '1.2.3',
  seriesInstanceUid: '1.2.3.1',
};
const source = { kind: 'dimse' as const, callingAe: 'CT1', calledAe: 'MBOX', remoteAddress: '127.0.0.1' };

async function written(ctx: IngestContext, h?: DicomHeader, problem?: string): Promise<WrittenObject> {
  const tempPath = ctx.store.newTempPath();
  writeFileSync(tempPath, 'dataset');
  const fd = openSync(tempPath, 'r+');
  return { tempPath, fd, contentHash: 'ab'.repeat(32), size: 7, ...(h ? { header: h } : {}), ...(problem ? { problem } : {}) };
}

describe('storeWritten', () => {
  it('answers 0xA900 when the dataset is not of the SOP class the command announced, and quarantines it', async () => {
    const ctx = await context();
    const w = await written(ctx, header);
    const v = await storeWritten(ctx, w, source, { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUid: '1.2.3.4' });
    expect(v.status).toBe(0xa900);
    expect(v.comment).toMatch(/does not match/);
    expect(existsSync(w.tempPath)).toBe(false);
    const [entry] = await ctx.quarantine.list();
    expect(entry).toMatchObject({ reason: v.comment, sopInstanceUid: '1.2.3.4', source });
    expect(await ctx.store.get('1.2.3.4')).toBeUndefined();
  });

  it('answers 0xC000 for an unreadable dataset and for a UID that differs from the command', async () => {
    const ctx = await context();
    expect((await storeWritten(ctx, await written(ctx, undefined, 'truncated: x'), source)).status).toBe(0xc000);
    const other = await storeWritten(ctx, await written(ctx, header), source, { sopClassUid: header.sopClassUid, sopInstanceUid: '9.9' });
    expect(other).toMatchObject({ status: 0xc000, comment: expect.stringMatching(/instance UID/) });
    expect(await ctx.quarantine.list()).toHaveLength(2);
  });

  it('answers success once stored', async () => {
    const ctx = await context();
    const v = await storeWritten(ctx, await written(ctx, header), source, { sopClassUid: header.sopClassUid, sopInstanceUid: header.sopInstanceUid });
    expect(v).toEqual({ status: 0, outcome: 'stored' });
    expect((await ctx.store.get('1.2.3.4'))?.state).toBe('received');
  });
});
