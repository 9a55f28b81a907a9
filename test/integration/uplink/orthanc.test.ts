// Compress, queue and deliver to a real PACS: Debian's Orthanc with its DICOMweb plugin.
import { writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../../../shared/types/store.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, DATA_DIR, ensureData, heudiconvSplit } from '../../helpers/data.ts';
import { storescu } from '../../helpers/dcmtk.ts';
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

async function download(instance: string, to: string): Promise<void> {
  const res = await fetch(`${orthanc!.url}/instances/${instance}/file`);
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
      await download(id, file);
      expect(decodedPixels(file).equals(decodedPixels(join(DATA_DIR, original.path))), original.path).toBe(true);
      checked++;
    }
    expect(checked).toBe(40);
  });
});
