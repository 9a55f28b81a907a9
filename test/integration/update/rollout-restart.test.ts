// A fleet restart in the middle of a rollout continues where it was: the rollout's state comes
// back from <dataDir>/rollouts, the offers that stood are published again (the embedded broker
// forgot its retained messages), the boxes finish and the rollout completes. A box that never
// reports within the health timeout counts as failed 'timeout' for its wave's decision.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutView } from '../../../fleet/rollouts/schemas.ts';
import { startTestFleet, type TestFleet } from '../../helpers/fleet.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { makeRelease, seedBoxes, SimUpdateBox, uploadBundle, type SimIdentity } from './rollout-sim.ts';

describe('rollout across a fleet restart', () => {
  let work: string;
  let dataDir: string;
  let fleet: TestFleet | undefined;
  let ids: SimIdentity[];
  let release: Awaited<ReturnType<typeof makeRelease>>;
  const sims: SimUpdateBox[] = [];

  const connect = async (f: TestFleet, who: SimIdentity[], actDelayMs: number, firmware = (_id: string) => '1.0.0'): Promise<SimUpdateBox[]> => {
    const out = who.map((id) => new SimUpdateBox(id, { mqttUrl: f.mqttUrl, caPem: f.pki.caCertPem, firmware: firmware(id.id), behaviour: { failFirstTry: false, actDelayMs, healthMs: 50, pieces: 3 } }));
    await Promise.all(out.map((b) => b.connect()));
    sims.push(...out);
    return out;
  };
  const flags = (): string[] => ['--release-pubkeys', release.publicKeyPath];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'mbox-rollout-restart-'));
    dataDir = join(work, 'fleet');
    ids = await seedBoxes(dataDir, { prefix: 'rs', count: 8, group: 'ward', firmware: '1.0.0' });
    release = await makeRelease(work, { version: '1.2.0', payloadBytes: 64 * 1024 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(sims.map((b) => b.close().catch(() => undefined)));
    await fleet?.destroy();
    await rm(work, { recursive: true, force: true });
  });

  it('continues after a restart; a silent box times out', async () => {
    fleet = await startTestFleet(flags(), dataDir);
    expect((await uploadBundle(fleet, release.file, fleet.api.token!)).status).toBe(201);
    // Everyone acts after 1.5 s: the fleet is stopped while wave 2's offers wait.
    const first = await connect(fleet, ids, 1500);
    await waitUntil(async () => (await fleet!.api.get<Array<{ online: boolean }>>('/api/devices?group=ward')).body.every((d) => d.online), 20_000, 'boxes online');
    const created = await fleet.api.post<RolloutView>('/api/rollouts', {
      version: '1.2.0',
      group: 'ward',
      waves: [{ count: 2, successThreshold: 1, failureThreshold: 0 }, { percent: 100, successThreshold: 0.8, failureThreshold: 0.5 }],
      healthTimeoutMs: 6000,
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const wave2 = created.body.boxes.filter((b) => b.wave === 1).map((b) => b.deviceId);
    await waitUntil(async () => {
      const v = (await fleet!.api.get<RolloutView>(`/api/rollouts/${id}`)).body;
      return v.currentWave === 1 && v.boxes.filter((b) => b.wave === 1).every((b) => b.status === 'offered');
    }, 20_000, 'wave 2 offered');

    await Promise.all(first.map((b) => b.close()));
    await fleet.stop();
    const committedBefore = first.filter((b) => b.firmware === '1.2.0').map((b) => b.id);
    expect(committedBefore).toHaveLength(2);

    fleet = await startTestFleet(flags(), dataDir);
    const silent = wave2[0]!;
    // The restarted fleet listens on new ports: the boxes come back there (the silent one never does).
    const second = await connect(fleet, ids.filter((i) => i.id !== silent), 0, (id) => (committedBefore.includes(id) ? '1.2.0' : '1.0.0'));
    let view!: RolloutView;
    await waitUntil(async () => {
      view = (await fleet!.api.get<RolloutView>(`/api/rollouts/${id}`)).body;
      return view.state !== 'running';
    }, 30_000, 'the rollout to finish after the restart');
    expect(view.state).toBe('completed');
    expect(view.boxes.find((b) => b.deviceId === silent)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^timeout/) });
    expect(view.counts).toMatchObject({ committed: 7, failed: 1 });
    // Offers stood again only for boxes still working on them, with the new address.
    for (const b of second) {
      if (committedBefore.includes(b.id)) expect(b.offers).toEqual([]);
      else expect(b.offers.map((o) => new URL(o.offer.url).port)).toEqual([String(fleet.httpPort)]);
    }
    expect(view.timeline.filter((e) => e.event === 'created')).toHaveLength(1);
  }, 90_000);
});
