// Compress, queue and deliver to a real PACS: Debian's Orthanc with its DICOMweb plugin.
import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../../../shared/types/store.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, DATA_DIR, ensureData, heudiconvSplit, pydicomStorable } from '../../helpers/data.ts';
import { dcmsend, storescu } from '../../helpers/dcmtk.ts';
import { startOrthanc, type OrthancInstance } from '../../helpers/orthanc.ts';
import { decodedPixels } from '../../helpers/pixels.ts';
import { freePort, waitUntil } from '../../helpers/ports.ts';

interface Queue {
  byState: Record<string, number>;
  destinations: Array<{ destination: string; pending: number; committed: number; deadLetter: number }>;
}

let orthanc: OrthancInstance | undefined;
let box: TestBox | undefined;
afterAll(async () => {
  await box?.stop();
  await orthanc?.stop();
});
beforeAll(() => {
  ensureData();
});

async function download(pacs: OrthancInstance, instance: string, to: string): Promise<void> {
  const res = await fetch(`${pacs.url}/instances/${instance}/file`);
  writeFileSync(to, Buffer.from(await res.arrayBuffer()));
}

describe('delivery to Orthanc over STOW-RS', () => {
  it('holds the queue while the PACS is down, then delivers every instance once, compressed losslessly', async () => {
    const httpPort = await freePort();
    box = await startBox(['--destination', `http://127.0.0.1:${httpPort}/dicom-web`, '--destination-syntax', 'jpeg-ls', '--destination-retry-max-delay-ms', '2000', '--quiet-time-ms', '300']);
    const series = daikonSeries();
    const split = heudiconvSplit();
    const peer = { port: box.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' };
    expect((await storescu(series.map((f) => join(DATA_DIR, f.path)), { ...peer, propose: '1.2.840.10008.1.2.1', extraArgs: ['-ll', 'error'] })).code).toBe(0);
    expect((await storescu(split.map((f) => join(DATA_DIR, f.path)), { ...peer, propose: split[0]!.transferSyntax ?? undefined, requiredOnly: true })).code).toBe(0);
    const total = series.length + split.length;

    // Nobody listens yet: everything is queued and retried, nothing is lost or dead-lettered.
    await waitUntil(async () => (await box!.get<Queue>('/api/queue')).body.byState.queued === total, 30_000, 'all queued');
    await new Promise((r) => setTimeout(r, 1500));
    const down = (await box.get<Queue>('/api/queue')).body;
    expect(down.byState).toEqual({ queued: total });
    const first = (await box.get<InstanceRecord & { deliveries: Array<{ attempts: number; lastError?: string }> }>(`/api/instances/${series[0]!.sopInstance}`)).body;
    expect(first.deliveries[0]!.attempts).toBeGreaterThan(0);
    expect(first.deliveries[0]!.lastError).toMatch(/ECONNREFUSED|network/i);

    orthanc = await startOrthanc({ dicomWeb: true, httpPort });
    await waitUntil(async () => (await box!.get<Queue>('/api/queue')).body.byState.committed === total, 90_000, 'all committed');
    const queue = (await box.get<Queue>('/api/queue')).body;
    expect(queue.destinations[0]).toMatchObject({ destination: 'cloud', pending: 0, committed: total, deadLetter: 0 });

    // Nothing duplicated at the PACS: QIDO counts per study equal what the box holds.
    expect(await orthanc.instanceCount()).toBe(total);
    for (const study of [series[0]!, split[0]!]) {
      const uid = (await box.get<InstanceRecord>(`/api/instances/${study.sopInstance}`)).body.header.studyInstanceUid;
      const qido = await (await fetch(`${orthanc.url}/dicom-web/studies/${uid}/instances`)).json() as unknown[];
      expect(qido.length).toBe(study === series[0] ? series.length : split.length);
    }

    // What the PACS holds is JPEG-LS whose decoded pixels equal the original pixels.
    const work = await mkdtemp(join(tmpdir(), 'mbox-uplink-'));
    const ids = await orthanc.getJson<string[]>('/instances');
    let checked = 0;
    for (const id of ids.slice(0, 40)) {
      const tags = await orthanc.getJson<{ SOPInstanceUID: string }>(`/instances/${id}/simplified-tags`);
      const original = [...series, ...split].find((f) => f.sopInstance === tags.SOPInstanceUID)!;
      const meta = await orthanc.getJson<{ TransferSyntax: string }>(`/instances/${id}/metadata?expand`);
      expect(meta.TransferSyntax).toBe('1.2.840.10008.1.2.4.80');
      const file = join(work, `${id}.dcm`);
      await download(orthanc, id, file);
      expect(decodedPixels(file).equals(decodedPixels(join(DATA_DIR, original.path))), original.path).toBe(true);
      checked++;
    }
    expect(checked).toBe(40);
  });

  it('delivers the pydicom codec matrix: what Orthanc holds decodes to the pixels the box received', async () => {
    const pacs = await startOrthanc({ dicomWeb: true });
    const matrixBox = await startBox(['--destination', `${pacs.url}/dicom-web`, '--destination-retry-max-delay-ms', '2000', '--quiet-time-ms', '300']);
    try {
      const files = pydicomStorable();
      const r = await dcmsend(files.map((f) => join(DATA_DIR, f.path)), { port: matrixBox.dicomPort, host: '127.0.0.1', calledAe: 'MBOX', extraArgs: ['-ll', 'error'] });
      expect(r.code, r.stderr.slice(-500)).toBe(0);
      type Q = { byState: Record<string, number> };
      // settled: nothing received or queued any more (conflicting same-UID variants stay held)
      await waitUntil(async () => {
        const q = (await matrixBox.get<Q>('/api/queue')).body.byState;
        return !q.received && !q.queued && (q.committed ?? 0) > 0;
      }, 90_000, 'matrix settled');
      const q = (await matrixBox.get<Q>('/api/queue')).body.byState;
      // nothing duplicated: Orthanc holds exactly what the box committed
      expect(await pacs.instanceCount()).toBe(q.committed);
      const work = await mkdtemp(join(tmpdir(), 'mbox-matrix-'));
      let compared = 0;
      for (const id of await pacs.getJson<string[]>('/instances')) {
        const { SOPInstanceUID: uid } = await pacs.getJson<{ SOPInstanceUID: string }>(`/instances/${id}/simplified-tags`);
        const record = (await matrixBox.get<InstanceRecord>(`/api/instances/${uid}`)).body;
        const file = join(work, `${id}.dcm`);
        await download(pacs, id, file);
        const original = join(matrixBox.dataDir, record.path);
        let before: Buffer;
        try {
          before = decodedPixels(original);
        } catch {
          continue; // no pixels, or a syntax dcmtk cannot decode (it went as received)
        }
        expect(decodedPixels(file).equals(before), `${uid} (${record.header.transferSyntaxUid})`).toBe(true);
        compared++;
      }
      expect(compared).toBeGreaterThan(40);
      console.log(`codec matrix: ${JSON.stringify(q)}; pixels compared for ${compared} instances`);
    } finally {
      await matrixBox.stop();
      await pacs.stop();
    }
  });
});
