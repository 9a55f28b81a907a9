// The cloud receiver over real HTTP with real DICOM files: what it stores, how durably, how it
// dedupes, and how it answers (PS3.18 10.5 status codes and FailureReasons, JSON and XML).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StowClient } from '../../../shared/dicomweb/stow-client.ts';
import { parseStowResponse } from '../../../shared/dicomweb/stow-response-reader.ts';
import { inspectFile } from '../../../shared/storage/inspector.ts';
import { daikonSeries, ensureData, pydicomMalformed, pydicomNotDicom } from '../../helpers/data.ts';
import { dicomParts, multipartBody, seq, startReceiver, stow, type TestReceiver } from './receiver.ts';

const dir = mkdtempSync(join(tmpdir(), 'mbox-stow-'));
let rx: TestReceiver;
let series: Array<{ file: string; bytes: Buffer; uid: string; cls: string; study: string; series: string }>;
const objectFiles = () => readdirSync(join(dir, 'objects')).flatMap((shard) => readdirSync(join(dir, 'objects', shard)));

beforeAll(async () => {
  ensureData();
  series = await Promise.all(
    daikonSeries().map(async (f) => {
      const { header } = await inspectFile(f.file);
      return { file: f.file, bytes: readFileSync(f.file), uid: header!.sopInstanceUid, cls: header!.sopClassUid, study: header!.studyInstanceUid, series: header!.seriesInstanceUid };
    }),
  );
  rx = await startReceiver({ dataDir: dir });
});
afterAll(async () => {
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('STOW-RS receiver', () => {
  it('stores a whole series durably before answering 200 with every instance referenced', async () => {
    const study = series[0]!.study;
    const r = await stow(`${rx.base}/studies/${study}`, multipartBody(dicomParts(series.map((s) => s.bytes))), { 'x-mbox-uploader': 'box-17' });
    expect(r.status, r.text).toBe(200);
    expect(r.contentType).toMatch(/^application\/dicom\+json/);
    expect(r.json['00081190']!.Value).toEqual([`${rx.base}/studies/${study}`]);
    expect(seq(r.json, '00081199', '00081155')).toEqual(series.map((s) => s.uid));
    expect(seq(r.json, '00081199', '00081150')).toEqual(series.map((s) => s.cls));
    expect(seq(r.json, '00081199', '00081190')[0]).toBe(`${rx.base}/studies/${study}/series/${series[0]!.series}/instances/${series[0]!.uid}`);
    expect(r.json['00081198']).toBeUndefined();
    for (const s of series) {
      const entry = await rx.handle.getInstance(s.uid);
      expect(entry).toMatchObject({ sopClassUid: s.cls, studyInstanceUid: s.study, seriesInstanceUid: s.series, size: s.bytes.length, from: { id: 'box-17', verified: false } });
      expect(entry!.path).toBe(join('objects', entry!.contentHash.slice(0, 2), `${entry!.contentHash}.dcm`));
      // Byte-exact Part 10 file as sent.
      expect(readFileSync(join(dir, entry!.path)).equals(s.bytes)).toBe(true);
    }
    expect(objectFiles()).toHaveLength(20);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('takes the same series again as an idempotent re-send: 200, nothing duplicated or rewritten', async () => {
    const before = await rx.handle.getInstance(series[3]!.uid);
    const r = await stow(`${rx.base}/studies`, multipartBody(dicomParts(series.map((s) => s.bytes))));
    expect(r.status, r.text).toBe(200);
    expect(seq(r.json, '00081199', '00081155')).toHaveLength(20);
    expect(r.json['00081190']).toEqual({ vr: 'UR' });
    expect(objectFiles()).toHaveLength(20);
    expect(await rx.handle.getInstance(series[3]!.uid)).toEqual(before);
  });

  it('answers 202 for a good part next to a non-DICOM one, which fails alone with 0xC000', async () => {
    const notDicom = readFileSync(pydicomNotDicom()[0]!.file);
    const r = await stow(`${rx.base}/studies`, multipartBody(dicomParts([notDicom, series[0]!.bytes])));
    expect(r.status, r.text).toBe(202);
    expect(seq(r.json, '00081199', '00081155')).toEqual([series[0]!.uid]);
    expect(seq(r.json, '00081198', '00081197')).toEqual([0xc000]);
    expect(seq(r.json, '00081198', '00091001')[0]).toMatch(/part 1: not a DICOM Part 10 file/);
  });

  it('answers 409 when every part fails, each with its own reason', async () => {
    const truncated = readFileSync(pydicomMalformed().find((f) => f.path.endsWith('MR_truncated.dcm'))!.file);
    const badUid = Buffer.from(series[5]!.bytes);
    // The dataset's SOP Instance UID (second occurrence; the first is in the file meta) made invalid.
    const at = badUid.indexOf(series[5]!.uid, badUid.indexOf(series[5]!.uid, 0, 'latin1') + 1, 'latin1');
    badUid.write('x', at, 'latin1');
    const unknownSyntax = Buffer.from(series[6]!.bytes.toString('latin1').replace('1.2.840.10008.1.2.1\0', '1.2.840.10008.1.2.9\0'), 'latin1');
    const parts = [
      { data: readFileSync(pydicomNotDicom()[1]!.file), contentType: 'application/dicom' },
      { data: truncated, contentType: 'application/dicom' },
      { data: badUid, contentType: 'application/dicom' },
      { data: unknownSyntax, contentType: 'application/dicom' },
      { data: series[7]!.bytes, contentType: 'text/plain' },
      { data: series[7]!.bytes, contentType: 'image/jpeg' },
      { data: series[7]!.bytes, contentType: 'application/dicom; transfer-syntax=1.2.840.10008.1.2' },
    ];
    const r = await stow(`${rx.base}/studies`, multipartBody(parts));
    expect(r.status, r.text).toBe(409);
    expect(seq(r.json, '00081198', '00081197')).toEqual([0xc000, 0xc000, 0xa900, 0xc122, 0xc000, 0xc122, 0xc000]);
    expect(String(seq(r.json, '00081198', '00091001')[1])).toMatch(/truncated/);
    expect(seq(r.json, '00081198', '00081155')[3]).toBe(series[6]!.uid);
    expect(r.json['00081199']).toBeUndefined();
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });

  it('fails instances of another study than the URL names with 0xC409 (409 when none belong)', async () => {
    const r = await stow(`${rx.base}/studies/1.2.3.4.5`, multipartBody(dicomParts([series[0]!.bytes, series[1]!.bytes])));
    expect(r.status, r.text).toBe(409);
    expect(seq(r.json, '00081198', '00081197')).toEqual([0xc409, 0xc409]);
    expect(seq(r.json, '00081198', '00081155')).toEqual([series[0]!.uid, series[1]!.uid]);
    expect(r.json['00081190']!.Value).toEqual([`${rx.base}/studies/1.2.3.4.5`]);
  });

  it('keeps different bytes under a stored UID aside and fails them with 0x0111', async () => {
    const changed = Buffer.from(series[2]!.bytes);
    const last = changed.length - 1; // a pixel byte
    changed[last] = changed[last]! ^ 0xff;
    const r = await stow(`${rx.base}/studies`, multipartBody(dicomParts([changed])));
    expect(r.status, r.text).toBe(409);
    expect(seq(r.json, '00081198', '00081197')).toEqual([0x0111]);
    expect(String(seq(r.json, '00081198', '00091001')[0])).toMatch(/already stored with different content/);
    const entry = (await rx.handle.getInstance(series[2]!.uid))!;
    expect(entry.conflicts).toHaveLength(1);
    expect(readFileSync(join(dir, entry.path)).equals(series[2]!.bytes)).toBe(true);
    const aside = join(dir, 'objects', entry.conflicts![0]!.slice(0, 2), `${entry.conflicts![0]}.dcm`);
    expect(readFileSync(aside).equals(changed)).toBe(true);
    // Sent again: the same answer, nothing new.
    const again = await stow(`${rx.base}/studies`, multipartBody(dicomParts([changed])));
    expect(seq(again.json, '00081198', '00081197')).toEqual([0x0111]);
    expect((await rx.handle.getInstance(series[2]!.uid))!.conflicts).toHaveLength(1);
    expect(objectFiles()).toHaveLength(21);
  });

  it('stores a file whose meta names another SOP class as the dataset says, with WarningReason 0xB007 (202)', async () => {
    const CT = '1.2.840.10008.5.1.4.1.1.2'; // same length as the MR class UID: the meta group keeps its size
    const text = series[4]!.bytes.toString('latin1');
    const staleMeta = Buffer.from(text.replace(series[4]!.cls, CT), 'latin1'); // first occurrence: (0002,0002)
    const r = await stow(`${rx.base}/studies`, multipartBody(dicomParts([staleMeta])));
    expect(r.status, r.text).toBe(202);
    expect(seq(r.json, '00081199', '00081150')).toEqual([series[4]!.cls]);
    expect(seq(r.json, '00081199', '00081196')).toEqual([0xb007]);
    expect(String(seq(r.json, '00081199', '00091001')[0])).toMatch(/file meta names SOP class/);
  });

  it('answers in Native DICOM Model XML when asked, with the same content as JSON', async () => {
    const body = multipartBody(dicomParts([series[0]!.bytes, readFileSync(pydicomNotDicom()[2]!.file)]));
    const xml = await stow(`${rx.base}/studies`, body, { accept: 'application/dicom+xml' });
    const json = await stow(`${rx.base}/studies`, body, { accept: 'application/dicom+json' });
    expect(xml.status).toBe(202);
    expect(xml.contentType).toMatch(/^application\/dicom\+xml/);
    expect(xml.text).toContain('<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">');
    expect(parseStowResponse(xml.text, 'xml')).toEqual(parseStowResponse(json.text, 'json'));
    expect((await stow(`${rx.base}/studies`, body, { accept: 'text/html' })).status).toBe(406);
  });

  it('refuses what is not a STOW-RS body with JSON errors: 415 other types, 400 broken or empty multipart', async () => {
    const good = multipartBody(dicomParts([series[0]!.bytes]));
    const cases: Array<[string, { body: Buffer; contentType: string }, number]> = [
      ['JSON body', { body: Buffer.from('{}'), contentType: 'application/json' }, 415],
      ['single application/dicom', { body: series[0]!.bytes, contentType: 'application/dicom' }, 415],
      ['metadata+bulkdata', { ...good, contentType: good.contentType.replace('application/dicom', 'application/dicom+json') }, 415],
      ['no boundary parameter', { ...good, contentType: 'multipart/related; type="application/dicom"' }, 400],
      ['no parts', { body: Buffer.from('--x--\r\n'), contentType: 'multipart/related; type="application/dicom"; boundary=x' }, 400],
      ['not multipart framing', { body: Buffer.from('hello'), contentType: 'multipart/related; boundary=x' }, 400],
    ];
    for (const [name, body, status] of cases) {
      const r = await stow(`${rx.base}/studies`, body);
      expect(r.status, name).toBe(status);
      expect(r.json, name).toMatchObject({ statusCode: status, error: expect.any(String), message: expect.any(String) });
    }
  });

  it('keeps what was stored when the body breaks off after some parts (202, the rest failed)', async () => {
    const { body, contentType } = multipartBody(dicomParts([series[8]!.bytes, series[9]!.bytes]));
    const cut = body.subarray(0, body.length - 5000);
    const r = await stow(`${rx.base}/studies`, { body: cut, contentType });
    expect(r.status, r.text).toBe(202);
    expect(seq(r.json, '00081199', '00081155')).toEqual([series[8]!.uid]);
    expect(String(seq(r.json, '00081198', '00091001')[0])).toMatch(/closing boundary/);
  });

  it('parses a chunked upload whatever the chunk sizes', async () => {
    const { body, contentType } = multipartBody(dicomParts(series.slice(10, 13).map((s) => s.bytes)));
    const url = new URL(`${rx.base}/studies`);
    const text = await new Promise<string>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': contentType } }, (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (out += d));
        res.on('end', () => resolve(`${res.statusCode} ${out}`));
      });
      req.on('error', reject);
      // Sizes around the delimiter length so boundaries straddle chunks in every position.
      const sizes = [1, 2, 3, 17, 31, 40, 41, 42, 43, 64, 999];
      for (let off = 0, i = 0; off < body.length; i++) {
        const n = sizes[i % sizes.length]!;
        req.write(body.subarray(off, off + n));
        off += n;
      }
      req.end();
    });
    expect(text.slice(0, 4)).toBe('200 ');
    expect(parseStowResponse(text.slice(4), 'json').referenced.map((i) => i.sopInstanceUid)).toEqual(series.slice(10, 13).map((s) => s.uid));
  });

  it('lists a study for reconciliation (QIDO-RS), paged, and 204 for an unknown study', async () => {
    const study = series[0]!.study;
    const res = await fetch(`${rx.base}/studies/${study}/instances`, { headers: { accept: 'application/dicom+json' } });
    expect(res.status).toBe(200);
    const list = (await res.json()) as Array<Record<string, { Value: string[] }>>;
    expect(list.map((i) => i['00080018']!.Value[0]).sort()).toEqual(series.map((s) => s.uid).sort());
    expect(list[0]!['00080016']!.Value).toEqual([series[0]!.cls]);
    const page = (await (await fetch(`${rx.base}/studies/${study}/instances?limit=7&offset=14`)).json()) as unknown[];
    expect(page).toHaveLength(6);
    expect((await fetch(`${rx.base}/studies/1.2.3/instances`)).status).toBe(204);
    // The uplink's own client counts the same.
    const client = new StowClient({ baseUrl: rx.base });
    expect(await client.countInstances(study)).toBe(20);
    client.close();
  });

  it('takes an upload from the uplink StowClient and reports every instance stored', async () => {
    const client = new StowClient({ baseUrl: rx.base });
    const batch = series.slice(14, 18).map((s) => ({ sopInstanceUid: s.uid, sopClassUid: s.cls, path: s.file, size: s.bytes.length }));
    const result = await client.store(batch, { studyInstanceUid: series[0]!.study });
    client.close();
    expect(result.httpStatus).toBe(200);
    expect(result.results.map((r) => r.outcome)).toEqual(['stored', 'stored', 'stored', 'stored']);
    expect(existsSync(join(dir, 'index'))).toBe(true);
  });

  it('stores each instance once when the same series arrives in concurrent requests', async () => {
    const other = mkdtempSync(join(tmpdir(), 'mbox-stow-concurrent-'));
    const rx2 = await startReceiver({ dataDir: other });
    try {
      const body = multipartBody(dicomParts(series.map((s) => s.bytes)));
      const replies = await Promise.all([1, 2, 3, 4].map(() => stow(`${rx2.base}/studies`, body)));
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      const files = readdirSync(join(other, 'objects')).flatMap((shard) => readdirSync(join(other, 'objects', shard)));
      expect(files).toHaveLength(20);
      expect(readdirSync(join(other, 'tmp'))).toEqual([]);
      const list = (await (await fetch(`${rx2.base}/studies/${series[0]!.study}/instances`)).json()) as unknown[];
      expect(list).toHaveLength(20);
    } finally {
      await rx2.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});
