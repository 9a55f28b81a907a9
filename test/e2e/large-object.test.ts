// A 1 GiB multi-frame object must not need 1 GiB of memory: the box streams it to disk.
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import type { InstanceRecord } from '../../shared/types/store.ts';
import { spawnBox, type BoxProcess } from '../helpers/box.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { writeSyntheticDicom } from '../helpers/synthetic.ts';

const work = mkdtempSync(join(tmpdir(), 'mbox-large-'));
let box: BoxProcess | undefined;
afterAll(async () => {
  await box?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

async function datasetHash(file: string): Promise<string> {
  const { datasetOffset } = parseFileMeta(await readHead(file, 4096));
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { start: datasetOffset, highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function readHead(file: string, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream(file, { start: 0, end: n - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('large objects', () => {
  it('stores a 1 GiB multi-frame object with bounded memory', async () => {
    const file = join(work, 'large.dcm');
    const uid = await writeSyntheticDicom(file, { frames: 2048 }); // 2048 × 512 × 512 × 2 bytes = 1 GiB of pixels
    box = await spawnBox(join(work, 'data'));
    const baseline = box.peakRss();
    const r = await storescu([file], { port: box.dicomPort, calledAe: 'MBOX', propose: '1.2.840.10008.1.2.1', timeoutMs: 120_000 });
    expect(r.code, r.stderr.slice(-500)).toBe(0);
    const record = (await box.get<InstanceRecord>(`/api/instances/${uid}`)).body;
    expect(record.header.numberOfFrames).toBe(2048);
    expect(record.size).toBeGreaterThan(1024 ** 3);
    expect(record.contentHash).toBe(await datasetHash(file));
    const peak = box.peakRss();
    console.log(`1 GiB object: box peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB (at start ${(baseline / 2 ** 20).toFixed(0)} MiB)`);
    expect(peak).toBeLessThan(300 * 2 ** 20);
  }, 180_000);
});
