import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../../../appliance/api/server.ts';
import { createMetrics } from '../../../../appliance/metrics.ts';
import { DiskGuard } from '../../../../appliance/store/disk-guard.ts';
import { Quarantine } from '../../../../appliance/store/quarantine.ts';
import { Store } from '../../../../appliance/store/store.ts';
import { createLogger } from '../../../../shared/log.ts';

const log = createLogger('silent');
let store: Store;
let app: ReturnType<typeof buildApi>;
beforeAll(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'api-'));
  store = await Store.open({ dataDir, quietTimeMs: 1000, log });
  const disk = new DiskGuard({ path: dataDir, highWaterPercent: 100, minFreeBytes: 0, log });
  await disk.check();
  app = buildApi({ store, disk, quarantine: new Quarantine(dataDir), metrics: createMetrics(), log, health: () => ({ dicomListening: true, watchFolders: 0 }) });
});
afterAll(async () => {
  await app.close();
  await store.close();
});

describe('admin API', () => {
  it('answers unknown instances and routes with a JSON 404', async () => {
    const r = await app.inject({ url: '/api/instances/1.2.3' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: 'not-found', message: 'no instance 1.2.3', statusCode: 404 });
    expect((await app.inject({ url: '/nope' })).json()).toMatchObject({ error: 'not-found', statusCode: 404 });
  });

  it('validates query strings and answers 400 with the reason', async () => {
    const r = await app.inject({ url: '/api/studies?limit=0' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({ error: 'bad-request', message: expect.stringMatching(/limit/) });
  });

  it('reports health, an empty queue and Prometheus metrics', async () => {
    expect((await app.inject({ url: '/healthz' })).json()).toMatchObject({ status: 'ok', dicom: true, disk: { accepting: true } });
    expect((await app.inject({ url: '/api/queue' })).json()).toEqual({ byState: {}, pendingBytes: 0, oldestAgeSeconds: null, destinations: [] });
    const metrics = await app.inject({ url: '/metrics' });
    expect(metrics.headers['content-type']).toMatch(/text\/plain/);
    expect(metrics.body).toMatch(/mbox_disk_accepting 1/);
  });
});
