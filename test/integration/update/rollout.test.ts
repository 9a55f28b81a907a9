// The rollout proof: 100 simulated boxes (real mqtt.js clients over mutual TLS with certificates
// from the fleet's CA, registered in its registry) against the real fleet. Each box follows its
// offer like a real one (Range downloads over mTLS, sha256 check, phases reported); a seeded 10 %
// roll back on their first try. With waves 1 → 10 % → 50 % → 100 % and failureThreshold 0.1 the
// rollout pauses inside the wave that crosses the threshold, withdraws the offers nobody acted on,
// and the boxes of later waves never receive an offer. Also: a box that rolled back is skipped by
// the next rollout, an admin's re-approval offers it again, tampered and foreign bundles are
// refused with their code, downloads resume with Range, a revoked box cannot download.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceDetail } from '../../../shared/fleet/api.ts';
import { orderTargets } from '../../../fleet/rollouts/plan.ts';
import type { ReleaseRecord, RolloutView } from '../../../fleet/rollouts/schemas.ts';
import { startTestFleet, type TestFleet } from '../../helpers/fleet.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { fetchRange, makeRelease, pick, seedBoxes, seeded, SimUpdateBox, uploadBundle, type SimIdentity } from './rollout-sim.ts';

const BOXES = 100;
const OLD = '1.0.0';
const NEW = '1.1.0';
// Seed 10 puts no failing box in waves 1 and 2 and 5 of the 40 boxes of wave 3 (12.5 % > 10 %):
// the pause must come in the middle of wave 3, and wave 4's 50 boxes must never hear of 1.1.0.
const SEED = 10;
const WAVES = [{ count: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }].map((w) => ({ ...w, successThreshold: 1, failureThreshold: 0.1 }));

describe('rollout over 100 simulated boxes', () => {
  let work: string;
  let fleet: TestFleet;
  let boxes: SimUpdateBox[] = [];
  let lab: SimIdentity[] = [];
  let release: Awaited<ReturnType<typeof makeRelease>>;
  let failing: Set<string>;
  const byId = new Map<string, SimUpdateBox>();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mbox-rollout-'));
    const dataDir = join(work, 'fleet');
    const ids = await seedBoxes(dataDir, { prefix: 'ro', count: BOXES, group: 'clinics', firmware: OLD });
    lab = await seedBoxes(dataDir, { prefix: 'lab', count: 2, group: 'lab', firmware: OLD });
    release = await makeRelease(work, { version: NEW, payloadBytes: 256 * 1024 });
    fleet = await startTestFleet(['--release-pubkeys', release.publicKeyPath, '--rollout-health-timeout-ms', '60000'], dataDir);
    failing = new Set([...pick(BOXES, BOXES / 10, seeded(SEED))].map((i) => ids[i]!.id));
    boxes = ids.map(
      (id, i) =>
        new SimUpdateBox(id, {
          mqttUrl: fleet.mqttUrl,
          caPem: fleet.pki.caCertPem,
          firmware: OLD,
          // Failing boxes act at once; every fourth healthy one is slow to act, so a pause finds
          // offers nobody acted on yet.
          behaviour: failing.has(id.id) ? { failFirstTry: true, actDelayMs: 0, healthMs: 30, pieces: 2 } : { failFirstTry: false, actDelayMs: i % 4 === 0 ? 2500 : 50, healthMs: 150, pieces: 2 },
        }),
    );
    for (const b of boxes) byId.set(b.id, b);
    for (let i = 0; i < boxes.length; i += 25) await Promise.all(boxes.slice(i, i + 25).map((b) => b.connect()));
    await waitUntil(async () => (await fleet.api.get<Array<{ online: boolean; firmware: string | null }>>('/api/devices?group=clinics')).body.filter((d) => d.online && d.firmware === OLD).length === BOXES, 30_000, 'all boxes online');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(boxes.map((b) => b.close().catch(() => undefined)));
    await fleet?.destroy();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses a tampered bundle and a bundle signed by another key, keeping nothing', async () => {
    const bytes = await readFile(release.file);
    const tampered = Buffer.from(bytes);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    const t = await uploadBundle(fleet, tampered, fleet.api.token!);
    expect(t.status).toBe(400);
    expect(['unreadable', 'file-mismatch', 'manifest-invalid', 'signature-invalid']).toContain(t.body['code']);

    const foreign = await makeRelease(join(work, 'other'), { version: '9.9.9', payloadBytes: 1024 });
    const f = await uploadBundle(fleet, foreign.file, fleet.api.token!);
    expect(f.status).toBe(400);
    expect(f.body['code']).toBe('unknown-key');
    expect(f.body['message']).toMatch(/unknown-key/);

    const left = (await readdir(join(fleet.dataDir, 'releases'))).filter((n) => n !== 'index.json');
    expect(left).toEqual([]);
    const audit = await fleet.api.get<Array<{ action: string; outcome: string; detail?: { code?: string } }>>('/api/audit?action=release.upload');
    expect(audit.body.filter((e) => e.outcome === 'refused').map((e) => e.detail?.code)).toContain('unknown-key');
  });

  it('stores a verified release once; the same version with other bytes is a conflict', async () => {
    const first = await uploadBundle(fleet, release.file, fleet.api.token!);
    expect(first.status).toBe(201);
    const rec = first.body as unknown as ReleaseRecord;
    expect(rec).toMatchObject({ version: NEW, sha256: release.sha256, size: release.size, arch: 'arm64', uploadedBy: 'bootstrap-admin' });
    expect(rec.keyId).toHaveLength(16);
    expect((await uploadBundle(fleet, release.file, fleet.api.token!)).status).toBe(200);
    const other = await makeRelease(work, { version: NEW, payloadBytes: 2048, keysDir: join(work, 'keys') });
    const clash = await uploadBundle(fleet, other.file, fleet.api.token!);
    expect(clash.status).toBe(409);
    expect((await stat(join(fleet.dataDir, 'releases', `${NEW}.mbx`))).size).toBe(release.size);
    expect((await fleet.api.get<ReleaseRecord[]>('/api/releases')).body.map((r) => r.version)).toEqual([NEW]);
  });

  it('serves the bundle to a box by its certificate, resumable with Range; refuses strangers and revoked boxes', async () => {
    const url = `${fleet.baseUrl}/api/releases/${NEW}/bundle`;
    const box = lab[0]!;
    const half = Math.floor(release.size / 2);
    const a = await fetchRange(url, box, fleet.pki.caCertPem, { start: 0, end: half - 1 });
    expect(a.status).toBe(206);
    expect(a.headers['content-range']).toBe(`bytes 0-${half - 1}/${release.size}`);
    expect(a.headers['etag']).toBe(`"${release.sha256}"`);
    // The connection dropped here; the box asks for the rest.
    const b = await fetchRange(url, box, fleet.pki.caCertPem, { start: half });
    expect(b.status).toBe(206);
    expect(Buffer.concat([a.body, b.body]).equals(await readFile(release.file))).toBe(true);
    expect((await fetchRange(url, box, fleet.pki.caCertPem, { start: release.size })).status).toBe(416);

    const anonymous = await fleet.api.as(undefined).get(`/api/releases/${NEW}/bundle`);
    expect(anonymous.status).toBe(401);
    const operator = await fleet.api.post<{ token: string }>('/api/tokens/api', { name: 'ops', role: 'operator' });
    const viaToken = await fleet.api.as(operator.body.token).get(`/api/releases/${NEW}/bundle`);
    expect(viaToken.status).toBe(200);
    const head = await fleet.api.as(operator.body.token).send<string | undefined>('HEAD', `/api/releases/${NEW}/bundle`);
    expect(head.status).toBe(200);
    expect(head.body).toBeUndefined();
    // Uploading needs the bundle as the body, and the admin role.
    expect((await fleet.api.post('/api/releases')).status).toBe(400);
    expect((await uploadBundle(fleet, release.file, operator.body.token)).status).toBe(403);

    const revoked = lab[1]!;
    expect((await fleet.api.post(`/api/devices/${revoked.id}/revoke`)).status).toBe(200);
    const refused = await fetchRange(url, revoked, fleet.pki.caCertPem, { start: 0 });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body.toString('utf8'))).toMatchObject({ error: 'revoked' });
  });

  it('pauses in the wave that crosses the failure threshold; later waves never receive an offer', async () => {
    const created = await fleet.api.post<RolloutView>('/api/rollouts', { version: NEW, group: 'clinics', waves: WAVES, healthTimeoutMs: 60_000 });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body.waves.map((w) => w.size)).toEqual([1, 9, 40, 50]);
    // The wave order is the stable one: by SHA-256 of the id.
    const order = orderTargets(boxes.map((b) => b.id));
    for (const b of created.body.boxes) expect(b.wave, b.deviceId).toBe([1, 10, 50, 100].findIndex((c) => order.indexOf(b.deviceId) < c));

    let view!: RolloutView;
    await waitUntil(async () => {
      view = (await fleet.api.get<RolloutView>(`/api/rollouts/${id}`)).body;
      return view.state === 'paused';
    }, 60_000, 'the rollout to pause');
    expect(view.currentWave).toBe(2);
    expect(view.pauseReason).toMatch(/^wave 3: failure rate 12\.5 % \(5 of 40\) exceeds 10\.0 %/);
    expect(view.waves.map((w) => w.state)).toEqual(['complete', 'complete', 'running', 'waiting']);

    await Promise.all(boxes.map((b) => b.idle()));
    await new Promise((r) => setTimeout(r, 1500)); // anything late would show up now
    view = (await fleet.api.get<RolloutView>(`/api/rollouts/${id}`)).body;
    const waveOf = new Map(view.boxes.map((b) => [b.deviceId, b]));
    const later = boxes.filter((b) => waveOf.get(b.id)!.wave === 3);
    expect(later).toHaveLength(50);
    for (const b of later) expect(b.offers, `${b.id} of wave 4`).toEqual([]);
    expect(later.every((b) => waveOf.get(b.id)!.status === 'pending')).toBe(true);

    const wave3 = boxes.filter((b) => waveOf.get(b.id)!.wave === 2);
    const withdrawn = wave3.filter((b) => waveOf.get(b.id)!.status === 'pending');
    expect(withdrawn.length).toBeGreaterThan(0);
    for (const b of withdrawn) {
      expect(b.withdrawals).toBeGreaterThan(0);
      expect(b.reported).toEqual([]);
      expect(waveOf.get(b.id)!.reason).toBe('offer withdrawn');
    }
    const rolledBack = view.boxes.filter((b) => b.status === 'rolled-back');
    expect(rolledBack.map((b) => b.deviceId).sort()).toEqual(wave3.filter((b) => failing.has(b.id)).map((b) => b.id).sort());
    for (const b of rolledBack) expect(b.reason).toMatch(/health check failed/);
    expect(view.tallies[2]).toMatchObject({ size: 40, failures: 5, counted: 40 });
    expect(view.timeline.map((e) => e.event)).toEqual(expect.arrayContaining(['created', 'wave-started', 'wave-complete', 'rolled-back', 'paused']));

    // Every box that took part downloaded in two Range requests and verified the hash.
    const committed = boxes.filter((b) => b.firmware === NEW);
    expect(committed.length).toBe(view.counts['committed']);
    for (const b of committed) expect(b.downloadedBytes).toBe(release.size);

    // The fleet shows the rollback on the device and in the audit log.
    const rb = rolledBack[0]!.deviceId;
    const detail = (await fleet.api.get<DeviceDetail>(`/api/devices/${rb}`)).body;
    expect(detail.update?.status).toMatchObject({ phase: 'rolled-back', version: NEW });
    expect(detail.update?.failedReleases).toEqual([expect.objectContaining({ version: NEW, state: 'failed' })]);
    expect(detail.update?.rollout).toMatchObject({ id, boxStatus: 'rolled-back' });
    expect(detail.events.some((e) => e.event === 'update' && e.detail?.includes('rolled-back'))).toBe(true);
    const audit = await fleet.api.get<Array<{ action: string; target?: string }>>(`/api/audit?action=rollout.&target=${id}`);
    expect(audit.body.map((e) => e.action)).toEqual(expect.arrayContaining(['rollout.create', 'rollout.auto-pause']));

    // A release a rollout still offers cannot be deleted.
    expect((await fleet.api.send('DELETE', `/api/releases/${NEW}`)).status).toBe(409);
    const aborted = await fleet.api.post<RolloutView>(`/api/rollouts/${id}/abort`);
    expect(aborted.body.state).toBe('aborted');
    // Resuming an aborted rollout is a conflict, not a silent no-op.
    expect((await fleet.api.post(`/api/rollouts/${id}/resume`)).status).toBe(409);
  }, 120_000);

  it('never offers a release again to a box it rolled back on; an admin re-approval does', async () => {
    const before = new Map(boxes.map((b) => [b.id, b.offers.length]));
    const rolledBackBefore = boxes.filter((b) => b.failedVersions.includes(NEW)).map((b) => b.id);
    expect(rolledBackBefore).toHaveLength(5);
    const created = await fleet.api.post<RolloutView>('/api/rollouts', { version: NEW, group: 'clinics', waves: [{ percent: 100, successThreshold: 0, failureThreshold: 1 }] });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const status = new Map(created.body.boxes.map((b) => [b.deviceId, b]));
    for (const d of rolledBackBefore) expect(status.get(d)).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/failed on this box before/) });

    let view!: RolloutView;
    await waitUntil(async () => {
      view = (await fleet.api.get<RolloutView>(`/api/rollouts/${id}`)).body;
      return view.state === 'completed';
    }, 60_000, 'the second rollout to complete');
    await Promise.all(boxes.map((b) => b.idle()));
    for (const d of rolledBackBefore) {
      const b = byId.get(d)!;
      expect(b.offers.length, d).toBe(before.get(d));
      expect(b.offers.some((o) => o.offer.rolloutId === id)).toBe(false);
    }
    // The other five failing boxes met 1.1.0 for the first time here and rolled back.
    expect(view.counts['rolled-back']).toBe(5);
    expect(view.counts['skipped']).toBe(5);
    expect(view.counts['committed']).toBe(90);

    // Retry needs an admin.
    const operator = await fleet.api.post<{ token: string }>('/api/tokens/api', { name: 'ops-2', role: 'operator' });
    const target = rolledBackBefore[0]!;
    expect((await fleet.api.as(operator.body.token).post(`/api/rollouts/${id}/devices/${target}/retry`)).status).toBe(403);
    const retried = await fleet.api.post<RolloutView>(`/api/rollouts/${id}/devices/${target}/retry`);
    expect(retried.status).toBe(200);
    await waitUntil(async () => (await fleet.api.get<RolloutView>(`/api/rollouts/${id}`)).body.boxes.find((b) => b.deviceId === target)?.status === 'committed', 30_000, 'the retried box to commit');
    const box = byId.get(target)!;
    expect(box.offers.at(-1)?.offer).toMatchObject({ rolloutId: id, retryApproved: true, version: NEW });
    expect(box.firmware).toBe(NEW);
    const upd = (await fleet.api.get<DeviceDetail>(`/api/devices/${target}`)).body.update;
    expect(upd?.failedReleases).toEqual([]);
    expect(upd?.status?.phase).toBe('committed');
  }, 120_000);
});
