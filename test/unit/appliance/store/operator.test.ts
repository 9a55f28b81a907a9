import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi } from '../../../../appliance/api/server.ts';
import { createMetrics } from '../../../../appliance/metrics.ts';
import { DiskGuard } from '../../../../appliance/store/disk-guard.ts';
import { discardHeld, OperatorError, releaseHeld, requeueStudy } from '../../../../appliance/store/operator.ts';
import { Quarantine } from '../../../../appliance/store/quarantine.ts';
import { Store } from '../../../../appliance/store/store.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { DicomHeader, InstanceRecord } from '../../../../shared/types/store.ts';

const log = createLogger('silent');
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function openStore(): Promise<Store> {
  const dataDir = mkdtempSync(join(tmpdir(), 'operator-'));
  const store = await Store.open({ dataDir, quietTimeMs: 60_000, log });
  cleanup.push(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return store;
}

const header = (uid: string, study = '1.2.3'): DicomHeader => ({
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
  sopInstanceUid: uid,
  studyInstanceUid: study,
  seriesInstanceUid: `${study}.1`,
  modality: 'MR',
});

async function put(store: Store, uid: string, content: string, study = '1.2.3'): Promise<InstanceRecord> {
  const tempPath = store.newTempPath();
  writeFileSync(tempPath, content);
  const contentHash = createHash('sha256').update(content).digest('hex');
  return (await store.accept({ header: header(uid, study), contentHash, tempPath, size: content.length, source: { kind: 'watch', path: 'x' } })).record;
}

/** A held instance: the second version of a UID (a conflict is held until a person decides). */
async function held(store: Store, uid = '1.2.3.1'): Promise<InstanceRecord> {
  await put(store, uid, 'first');
  const r = await put(store, uid, 'second');
  expect(r.state).toBe('held');
  return r;
}

describe('held instances', () => {
  it('releases a held instance into the pipeline with who did it in the history', async () => {
    const store = await openStore();
    const h = await held(store);
    const changes: string[] = [];
    store.on('state-changed', (r, from) => changes.push(`${r.id}: ${from} → ${r.state}`));
    const r = await releaseHeld(store, h.id, 'local-api', 'checked by Dr. X');
    expect(r.state).toBe('received');
    expect(r.reason).toBeUndefined();
    expect(r.history.at(-1)).toMatchObject({ event: 'released', state: 'received', detail: expect.stringMatching(/^by local-api: checked by Dr\. X \(was held: uid-conflict/) });
    expect(changes).toEqual([`${h.id}: held → received`]);
  });

  it('discards without deleting anything from disk', async () => {
    const store = await openStore();
    const h = await held(store);
    const r = await discardHeld(store, h.id, 'fleet command c1', 'duplicate test image');
    expect(r.state).toBe('discarded');
    expect(r.history.at(-1)).toMatchObject({ event: 'discarded', detail: 'by fleet command c1: duplicate test image' });
    expect(existsSync(join(store.dataDir, r.path))).toBe(true);
    expect((await store.queueSummary()).byState).toMatchObject({ discarded: 1 });
  });

  it('refuses unknown ids (404) and instances that are not held (409)', async () => {
    const store = await openStore();
    await put(store, '1.2.3.9', 'x');
    await expect(releaseHeld(store, '9.9', 'x')).rejects.toMatchObject({ statusCode: 404, message: 'no instance 9.9' });
    const e = await discardHeld(store, '1.2.3.9', 'x').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(OperatorError);
    expect(e).toMatchObject({ statusCode: 409, code: 'conflict', message: 'instance 1.2.3.9 is received, not held' });
  });
});

describe('requeueStudy', () => {
  it('moves committed and dead-lettered instances back, leaves pending and held ones', async () => {
    const store = await openStore();
    const [a, b, c] = [await put(store, '1.2.3.1', 'a'), await put(store, '1.2.3.2', 'b'), await put(store, '1.2.3.3', 'c')];
    await put(store, '1.2.3.4', 'd');
    await held(store, '1.2.3.5');
    await store.transition(a.id, 'received', 'committed', 'committed');
    await store.transition(b.id, 'received', 'dead-letter', 'dead-lettered', 'refused');
    await store.transition(c.id, 'received', 'committed', 'committed');
    await store.markPurged(c.id);
    const report = await requeueStudy(store, '1.2.3', 'fleet command c2');
    expect(report.requeued.sort()).toEqual([a.id, b.id]);
    // 1.2.3.4 and the first version of 1.2.3.5 are still received; the conflict is held.
    expect(report.skipped).toEqual({ purged: 1, pending: 2, held: 1 });
    expect((await store.get(a.id))?.history.at(-1)).toMatchObject({ event: 'resend-requested', state: 'received', detail: 'by fleet command c2' });
  });

  it('says so for an unknown study', async () => {
    const store = await openStore();
    await expect(requeueStudy(store, '7.7.7', 'x')).rejects.toMatchObject({ statusCode: 404, message: 'no study 7.7.7' });
  });
});

describe('admin API: held routes and /api/agent', () => {
  async function api(store: Store) {
    const disk = new DiskGuard({ path: store.dataDir, highWaterPercent: 100, minFreeBytes: 0, log });
    const app = buildApi({ store, disk, quarantine: new Quarantine(store.dataDir), metrics: createMetrics(), log, health: () => ({ dicomListening: true, watchFolders: 0 }) });
    cleanup.push(() => app.close());
    return app;
  }

  it('releases and discards through POST /api/held/:uid/…, with JSON errors', async () => {
    const store = await openStore();
    const app = await api(store);
    const h = await held(store);
    const r = await app.inject({ method: 'POST', url: `/api/held/${encodeURIComponent(h.id)}/release` });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ id: h.id, state: 'received', detail: expect.stringContaining('by local-api') });
    const again = await app.inject({ method: 'POST', url: `/api/held/${encodeURIComponent(h.id)}/release` });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toEqual({ error: 'conflict', message: `instance ${h.id} is received, not held`, statusCode: 409 });
    const missing = await app.inject({ method: 'POST', url: '/api/held/9.9/discard', payload: { reason: 'x' } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'not-found', message: 'no instance 9.9', statusCode: 404 });
    const h2 = await held(store, '1.2.3.7');
    const d = await app.inject({ method: 'POST', url: `/api/held/${encodeURIComponent(h2.id)}/discard`, payload: { reason: 'wrong patient' } });
    expect(d.json()).toMatchObject({ state: 'discarded', detail: 'by local-api: wrong patient' });
    const bad = await app.inject({ method: 'POST', url: `/api/held/${encodeURIComponent(h2.id)}/discard`, payload: { reason: 5 } });
    expect(bad.statusCode).toBe(400);
  });

  it('answers /api/agent on a box without a fleet', async () => {
    const app = await api(await openStore());
    expect((await app.inject({ url: '/api/agent' })).json()).toMatchObject({ configured: false, enrolment: { state: 'not-configured' }, connected: false, deviceId: null });
  });
});
