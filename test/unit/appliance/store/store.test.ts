import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../../../appliance/store/store.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { DicomHeader, IncomingObject, StudyRecord } from '../../../../shared/types/store.ts';

const log = createLogger('silent');
const open: Store[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
});

async function openStore(dataDir = mkdtempSync(join(tmpdir(), 'store-')), quietTimeMs = 10_000) {
  const store = await Store.open({ dataDir, quietTimeMs, log });
  open.push(store);
  return store;
}

function header(uid: string, study = '1.2.3', series = '1.2.3.4'): DicomHeader {
  return { transferSyntaxUid: '1.2.840.10008.1.2.1', sopClassUid: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUid: uid, studyInstanceUid: study, seriesInstanceUid: series, modality: 'MR' };
}

function incoming(store: Store, h: DicomHeader, content: string): IncomingObject {
  const tempPath = store.newTempPath();
  writeFileSync(tempPath, content);
  return { header: h, contentHash: createHash('sha256').update(content).digest('hex'), tempPath, size: content.length, source: { kind: 'watch', path: 'x.dcm' } };
}

describe('Store', () => {
  it('stores a new instance under its content hash with a history', async () => {
    const store = await openStore();
    const obj = incoming(store, header('1.1'), 'bytes-a');
    const r = await store.accept(obj);
    expect(r.outcome).toBe('stored');
    expect(r.record.state).toBe('received');
    expect(r.record.history[0]).toMatchObject({ event: 'stored', state: 'received', source: { kind: 'watch' } });
    expect(readFileSync(join(store.dataDir, r.record.path), 'utf8')).toBe('bytes-a');
    expect(r.record.path).toContain(obj.contentHash);
    expect(existsSync(obj.tempPath)).toBe(false);
    expect((await store.get('1.1'))?.contentHash).toBe(obj.contentHash);
  });

  it('acknowledges identical bytes for the same UID once, storing nothing new', async () => {
    const store = await openStore();
    await store.accept(incoming(store, header('1.1'), 'same'));
    const again = incoming(store, header('1.1'), 'same');
    const r = await store.accept(again);
    expect(r.outcome).toBe('duplicate');
    expect(r.record.history.map((h) => h.event)).toEqual(['stored', 'duplicate-received']);
    expect(existsSync(again.tempPath)).toBe(false);
    const [study] = await store.listStudies();
    expect(study?.instances).toBe(1);
  });

  it('keeps both versions when the same UID arrives with different bytes, and flags the conflict', async () => {
    const store = await openStore();
    await store.accept(incoming(store, header('1.1'), 'first'));
    const r = await store.accept(incoming(store, header('1.1'), 'second'));
    expect(r.outcome).toBe('conflict');
    expect(r.record.state).toBe('held');
    expect(r.record.conflictOf).toBe('1.1');
    expect(r.record.reason).toMatch(/uid-conflict/);
    expect((await store.get('1.1'))?.conflicts).toEqual([r.record.id]);
    // the second version, sent again, is a duplicate of itself
    expect((await store.accept(incoming(store, header('1.1'), 'second'))).outcome).toBe('duplicate');
    const [study] = await store.listStudies();
    expect(study).toMatchObject({ instances: 2, conflicts: 1, states: { received: 1, held: 1 } });
  });

  it('groups studies and series and counts per state', async () => {
    const store = await openStore();
    await Promise.all([
      store.accept(incoming(store, header('1.1', 'S1', 'A'), 'a')),
      store.accept(incoming(store, header('1.2', 'S1', 'A'), 'b')),
      store.accept(incoming(store, header('1.3', 'S1', 'B'), 'c')),
      store.accept(incoming(store, header('2.1', 'S2', 'C'), 'd')),
    ]);
    const studies = await store.listStudies();
    expect(studies.map((s) => [s.studyInstanceUid, s.instances, s.series.length])).toEqual([
      ['S1', 3, 2],
      ['S2', 1, 1],
    ]);
    expect(await store.studyInstanceIds('S1')).toHaveLength(3);
    const q = await store.queueSummary();
    expect(q.byState).toEqual({ received: 4 });
    expect(q.pendingBytes).toBe(4);
  });

  it('moves records through states and keeps the work list per state in age order', async () => {
    const store = await openStore();
    await store.accept(incoming(store, header('1.1'), 'a'));
    await store.accept(incoming(store, header('1.2'), 'b'));
    const moved = await store.transition('1.1', 'received', 'held', 'filter-held', 'blank image');
    expect(moved).toMatchObject({ state: 'held', reason: 'blank image' });
    await expect(store.transition('1.1', 'received', 'filtered', 'x')).rejects.toThrow(/is held, not received/);
    expect(await store.idsInState('received')).toEqual(['1.2']);
    expect(await store.idsInState('held')).toEqual(['1.1']);
    expect((await store.queueSummary()).byState).toEqual({ received: 1, held: 1 });
    expect((await store.getStudy('1.2.3'))?.states).toEqual({ received: 1, held: 1 });
  });

  it('marks a study complete after the quiet time and reopens it when more arrives', async () => {
    const store = await openStore(undefined, 150);
    const done: StudyRecord[] = [];
    store.on('study-complete', (s) => done.push(s));
    await store.accept(incoming(store, header('1.1'), 'a'));
    await new Promise((r) => setTimeout(r, 80));
    await store.accept(incoming(store, header('1.2'), 'b'));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toHaveLength(0);
    await new Promise((r) => setTimeout(r, 150));
    expect(done.map((s) => s.instances)).toEqual([2]);
    expect((await store.getStudy('1.2.3'))?.completedAt).toBeTruthy();
    await store.accept(incoming(store, header('1.3'), 'c'));
    expect((await store.getStudy('1.2.3'))?.completedAt).toBeUndefined();
  });

  it('resumes after a restart: records, states and pending study clocks survive', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'store-'));
    const first = await openStore(dataDir, 200);
    await first.accept(incoming(first, header('1.1'), 'a'));
    await first.transition('1.1', 'received', 'held', 'filter-held', 'scout');
    writeFileSync(first.newTempPath(), 'half an object nobody acknowledged');
    await first.close();

    const second = await openStore(dataDir, 200);
    expect(await second.tempFiles()).toEqual([]);
    expect((await second.get('1.1'))?.state).toBe('held');
    const completed = await new Promise<StudyRecord>((resolve) => second.on('study-complete', resolve));
    expect(completed.studyInstanceUid).toBe('1.2.3');
  });
});
