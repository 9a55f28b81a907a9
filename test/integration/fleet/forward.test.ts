// Forwarding to a real PACS (Orthanc with its DICOMweb plugin): new instances reach it, and a queue
// interrupted by a receiver restart finishes after the restart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowClient } from '../../../shared/dicomweb/stow-client.ts';
import type { StowInstance } from '../../../shared/dicomweb/types.ts';
import { daikonSeries, ensureData, ROOT } from '../../helpers/data.ts';
import { startOrthanc, type OrthancInstance } from '../../helpers/orthanc.ts';
import { freePort, LOOPBACK, spawnPeer, waitForPort, waitUntil } from '../../helpers/ports.ts';
import { dicomParts, multipartBody, seq, startReceiver, stow, type TestReceiver } from './receiver.ts';

let orthanc: OrthancInstance;
const dirs: string[] = [];
const receivers: TestReceiver[] = [];
const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mbox-forward-'));
  dirs.push(d);
  return d;
};
const files = () => daikonSeries().map((f) => readFileSync(f.file));
const orthancUids = async () => (await orthanc.getJson<Array<{ MainDicomTags: { SOPInstanceUID: string } }>>('/instances?expand')).map((i) => i.MainDicomTags.SOPInstanceUID);

beforeAll(async () => {
  ensureData();
  orthanc = await startOrthanc({ dicomWeb: true });
});
afterAll(async () => {
  for (const r of receivers) await r.close().catch(() => undefined);
  await orthanc?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(dataDir: string, forward: Parameters<typeof startReceiver>[0]['forward']): Promise<TestReceiver> {
  const rx = await startReceiver({ dataDir, forward });
  receivers.push(rx);
  return rx;
}

async function clearOrthanc(): Promise<void> {
  for (const id of await orthanc.getJson<string[]>('/instances')) await fetch(`${orthanc.url}/instances/${id}`, { method: 'DELETE' });
}

describe('forwarding to a PACS', () => {
  it('forwards a stored series; Orthanc ends up holding every instance', async () => {
    await clearOrthanc();
    const rx = await start(newDir(), { baseUrl: `${orthanc.url}/dicom-web`, batchSize: 8 });
    const r = await stow(`${rx.base}/studies`, multipartBody(dicomParts(files())));
    expect(r.status, r.text).toBe(200);
    await waitUntil(async () => (await rx.handle.forwardSummary()).forwarded === 20, 30_000, 'all forwarded');
    expect(await rx.handle.forwardSummary()).toEqual({ pending: 0, forwarded: 20, failed: 0 });
    expect(await orthanc.instanceCount()).toBe(20);
    // A re-send stores nothing new, so nothing is forwarded again.
    await stow(`${rx.base}/studies`, multipartBody(dicomParts(files())));
    expect(await rx.handle.forwardSummary()).toEqual({ pending: 0, forwarded: 20, failed: 0 });
  });

  it('resumes an interrupted queue after a restart', async () => {
    await clearOrthanc();
    const dataDir = newDir();
    // First run: the PACS link fails after two batches (4 instances each), as if it went away.
    const real = new StowClient({ baseUrl: `${orthanc.url}/dicom-web` });
    let calls = 0;
    const flaky = {
      store: (instances: StowInstance[]) => (++calls <= 2 ? real.store(instances) : Promise.reject(new Error('simulated PACS outage'))),
      close: () => real.close(),
    };
    const first = await start(dataDir, { baseUrl: 'unused', client: flaky, batchSize: 4, initialDelayMs: 500 });
    const r = await stow(`${first.base}/studies`, multipartBody(dicomParts(files())));
    expect(r.status, r.text).toBe(200);
    await waitUntil(async () => calls >= 3, 10_000, 'third forward attempt');
    await first.close();
    const mid = await orthancUids();
    expect(mid).toHaveLength(8);

    // Second run on the same data directory, the PACS reachable: the queue drains by itself.
    const second = await start(dataDir, { baseUrl: `${orthanc.url}/dicom-web`, batchSize: 4, initialDelayMs: 100 });
    const before = await second.handle.forwardSummary();
    expect(before.forwarded).toBe(8);
    expect(before.pending).toBe(12);
    // Never-tried instances go at once; the batch that failed waits out the backoff the first run set.
    await waitUntil(async () => (await second.handle.forwardSummary()).forwarded === 20, 30_000, 'queue drained after restart');
    expect((await second.handle.getForward(mid[0]!))?.state).toBe('forwarded');
    expect(await orthanc.instanceCount()).toBe(20);
  });

  it('loses nothing acknowledged when the receiver process is killed (SIGKILL) and restarted', async () => {
    await clearOrthanc();
    const dataDir = newDir();
    const port = await freePort();
    const base = `http://${LOOPBACK}:${port}/dicom-web`;
    const run = async () => {
      const peer = spawnPeer(join(ROOT, '.node/bin/node'), [join(ROOT, 'test/integration/fleet/serve-receiver.ts'), dataDir, String(port), `${orthanc.url}/dicom-web`], { cwd: ROOT });
      await waitForPort(port, 20_000, () => (peer.exited() ? new Error(`receiver exited:\n${peer.outputTail()}`) : null));
      return peer;
    };
    const first = await run();
    const r = await stow(`${base}/studies`, multipartBody(dicomParts(files())));
    expect(r.status, r.text).toBe(200);
    // No clean shutdown: the index is not closed, the forward queue is wherever it was.
    first.child.kill('SIGKILL');
    await first.stop(1_000);
    const second = await run();
    try {
      // The study UID, from the Retrieve URL the receiver gave for the first instance.
      const study = String(seq(r.json, '00081199', '00081190')[0]).split('/studies/')[1]!.split('/')[0]!;
      const list = (await (await fetch(`${base}/studies/${study}/instances`)).json()) as unknown[];
      expect(list).toHaveLength(20);
      await waitUntil(async () => (await orthanc.instanceCount()) === 20, 30_000, 'Orthanc holds the series after the restart');
    } finally {
      await second.stop();
    }
  });
});
