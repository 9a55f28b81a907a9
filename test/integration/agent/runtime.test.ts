// The restartable runtime on a real box, driven by the planner without any fleet: each kind of
// step takes effect, a failing restart is rolled back, and the store and admin API stay up.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { plan, validateDesired } from '../../../appliance/agent/planner.ts';
import { echoscu } from '../../helpers/dcmtk.ts';
import { removeDir, startBox, type TestBox } from '../../helpers/box.ts';

const boxes: TestBox[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const b of boxes.splice(0)) {
    await b.stop();
    removeDir(b.dataDir);
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function box(flags: string[] = []): Promise<TestBox> {
  const b = await startBox(flags);
  boxes.push(b);
  return b;
}

async function apply(b: TestBox, config: Record<string, unknown>) {
  const v = validateDesired(b.runtime.config, { config });
  if (!v.ok) throw new Error(v.error);
  return b.runtime.reconfigure(v.next, plan(b.runtime.config, v.next));
}

describe('appliance runtime', () => {
  it('rolls back a destination change whose files cannot be read, keeping the running uplink', async () => {
    const b = await box(['--destination', 'http://127.0.0.1:9/dicom-web', '--destination-syntax', 'as-received']);
    const before = b.runtime.uplink;
    expect(before?.uploaders.has('cloud')).toBe(true);
    const r = await apply(b, { quietTimeMs: 50, destinations: [{ name: 'tls', url: 'https://127.0.0.1:9/dicom-web', caFile: '/nonexistent/ca.pem' }] });
    expect(r).toMatchObject({ ok: false, failedStep: 'uplink (destinations)', rolledBack: true, steps: ['quiet-time (quietTimeMs)'] });
    expect(r.ok ? '' : r.error).toContain('/nonexistent/ca.pem');
    expect(b.runtime.config.destinations).toEqual([]);
    expect(b.runtime.config.quietTimeMs).not.toBe(50);
    expect([...(b.runtime.uplink?.uploaders.keys() ?? [])]).toEqual(['cloud']);
    expect((await b.get('/healthz')).status).toBe(200);
  });

  it('restarts every service on the same port and keeps the store open', async () => {
    const b = await box();
    const port = b.runtime.dicomPort;
    await b.runtime.restart();
    expect(b.runtime.dicomPort).toBe(port);
    expect((await echoscu({ port, calledAe: 'MBOX' })).code).toBe(0);
    expect((await b.get('/api/queue')).status).toBe(200);
  });

  it('restarts the watch folders with new timings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mbox-watch-'));
    dirs.push(dir);
    const b = await box(['--watch-dirs', dir]);
    const r = await apply(b, { watchSettleMs: 100, watchIntervalMs: 100 });
    expect(r).toEqual({ ok: true, steps: ['watchers (watchSettleMs, watchIntervalMs)'] });
    expect(b.runtime.watcherCount).toBe(1);
    expect((await b.get<{ watchFolders: number }>('/healthz')).body.watchFolders).toBe(1);
  });

  it('takes values that need no restart into the config, with no steps', async () => {
    const b = await box();
    const r = await apply(b, { compressWorkers: 3 });
    expect(r).toEqual({ ok: true, steps: [] });
    expect(b.runtime.config.compressWorkers).toBe(3);
  });

  it('announces each applied config (the agent re-arms telemetry on it)', async () => {
    const b = await box();
    const seen: number[] = [];
    b.runtime.on('config', (c) => seen.push(c.telemetryIntervalMs));
    expect(await apply(b, { telemetryIntervalMs: 5000 })).toEqual({ ok: true, steps: ['telemetry-interval (telemetryIntervalMs)'] });
    expect(seen).toEqual([5000]);
  });
});
