// Commands and telemetry that reach into the pipeline: a study uploaded to a real STOW-RS receiver,
// sent again on a fleet command (the receiver dedupes), the daily figures and the uplink's last
// error in telemetry, and a destination added by desired config.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAppliance } from '../../../appliance/appliance.ts';
import type { DailyFigures, PipelineFigures } from '../../../shared/fleet/messages.ts';
import type { InstanceRecord } from '../../../shared/types/store.ts';
import { storescu } from '../../helpers/dcmtk.ts';
import { freePort, waitUntil } from '../../helpers/ports.ts';
import { newUid, writeSyntheticDicom } from '../../helpers/synthetic.ts';
import { startReceiver, type TestReceiver } from '../fleet/receiver.ts';
import { connectFleet, createAgentPki, createBroker, getJson, startFleetBox, writeIdentity, type AgentPki, type FleetSide, type TestBroker } from './harness.ts';

const ID = 'mb-pipe0001';
const T = { telemetry: `mbox/${ID}/telemetry`, desired: `mbox/${ID}/config/desired`, reported: `mbox/${ID}/config/reported` };

let pki: AgentPki;
let broker: TestBroker;
let fleet: FleetSide;
let box: RunningAppliance;
let receiver: TestReceiver;
const dirs: string[] = [];
const tmp = (p: string) => {
  const d = mkdtempSync(join(tmpdir(), p));
  dirs.push(d);
  return d;
};

async function sendStudy(count: number): Promise<{ study: string; uids: string[] }> {
  const study = newUid();
  const dir = tmp('mbox-agent-files-');
  const files = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const f = join(dir, `${i}.dcm`);
      await writeSyntheticDicom(f, { frames: 1, rows: 32, columns: 32, studyInstanceUid: study });
      return f;
    }),
  );
  const r = await storescu(files, { port: box.runtime.dicomPort, calledAe: 'MBOX' });
  expect(r.code, r.stderr).toBe(0);
  const ids = (await getJson<{ instanceIds: string[] }>(box.httpPort, `/api/studies/${study}`)).instanceIds;
  return { study, uids: ids };
}

type InstanceBody = InstanceRecord & { deliveries?: Array<{ destination: string; state: string }> };
const instance = (uid: string) => getJson<InstanceBody>(box.httpPort, `/api/instances/${uid}`);
const allCommitted = async (uids: string[], event = 'committed') =>
  (await Promise.all(uids.map(instance))).every((r) => r.state === 'committed' && r.history.at(-1)?.event === event);

beforeAll(async () => {
  pki = createAgentPki();
  broker = await createBroker(pki);
  await broker.start();
  fleet = await connectFleet(broker, pki);
  receiver = await startReceiver({ dataDir: tmp('mbox-agent-rx-') });
  const dataDir = tmp('mbox-agent-pipe-');
  writeIdentity(dataDir, pki, ID, broker.url);
  box = await startFleetBox(dataDir, ['--destination', receiver.base, '--destination-syntax', 'as-received', '--quiet-time-ms', '300']);
  await fleet.waitFor(`mbox/${ID}/status`, (b) => b.online === true);
});

afterAll(async () => {
  await box?.stop();
  await receiver?.close();
  await fleet?.close();
  await broker?.stop();
  pki?.remove();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('agent and pipeline', () => {
  it('sends a committed study again on resend-study; the receiver keeps one copy', async () => {
    const { study, uids } = await sendStudy(4);
    await waitUntil(() => allCommitted(uids), 20_000, 'study committed');
    const first = await receiver.handle.getInstance(uids[0]!);
    expect(first).toBeDefined();

    const res = await fleet.command(ID, 'resend-study', { studyInstanceUid: study });
    expect(res).toMatchObject({ status: 'ok', result: { studyInstanceUid: study, skipped: {} } });
    expect(((res.result as { requeued: string[] }).requeued).sort()).toEqual([...uids].sort());
    await waitUntil(() => allCommitted(uids), 20_000, 'study committed again');
    const r = await instance(uids[0]!);
    expect(r.history.map((h) => h.event).slice(-3)).toEqual(['resend-requested', 'queued', 'committed']);
    expect(r.history.find((h) => h.event === 'resend-requested')?.detail).toMatch(/^by fleet command cmd-/);
    expect((await receiver.handle.getInstance(uids[0]!))?.receivedAt).toBe(first!.receivedAt);

    expect(await fleet.command(ID, 'resend-study', { studyInstanceUid: '1.2.999' })).toMatchObject({ status: 'error', error: 'no study 1.2.999' });
  });

  it('reports today per modality in telemetry, with bytes sent and upload latency', async () => {
    const since = Date.now();
    const t = await fleet.waitFor(T.telemetry, () => true, 5000, since);
    const daily = t.body.daily as DailyFigures[];
    const ot = daily.find((d) => d.modality === 'OT');
    expect(ot).toMatchObject({ studies: 1, instances: 4 });
    expect(ot!.bytesReceived).toBeGreaterThan(4 * 2048);
    // Sent twice (the resend), but the resend is not a slow first upload.
    expect(ot!.bytesSent).toBeGreaterThanOrEqual(2 * ot!.bytesReceived * 0.9);
    expect(ot!.uploadLatencyMs.count).toBe(4);
    expect(ot!.uploadLatencyMs.max).toBeGreaterThan(0);
    const p = t.body.pipeline as PipelineFigures;
    expect(p).toMatchObject({ committed: 4, queueDepth: 0, lastError: null });
    expect(p.bytesOut).toBeGreaterThan(0);
  });

  it('takes a new destination from the fleet and shows its failures as the last error', async () => {
    const dead = `http://127.0.0.1:${await freePort()}/dicom-web`;
    const since = Date.now();
    await fleet.publish(T.desired, { version: 1, config: { destinations: [{ name: 'second', url: dead, syntax: 'as-received', retryMaxDelayMs: 500 }] }, issuedAt: new Date().toISOString(), issuedBy: 'test' }, true);
    const r = await fleet.waitFor(T.reported, (b) => b.version === 1, 20_000, since);
    expect(r.body).toMatchObject({ status: 'applied', steps: ['uplink (destinations)'] });
    const { uids } = await sendStudy(1);
    const t = await fleet.waitFor(T.telemetry, (b) => typeof (b.pipeline as PipelineFigures).lastError === 'string', 20_000, since);
    expect((t.body.pipeline as PipelineFigures).lastError).toContain('destination second');
    const rec = await instance(uids[0]!);
    expect(rec.state).toBe('queued');
    expect(rec.deliveries?.map((d) => [d.destination, d.state]).sort()).toEqual([
      ['cloud', 'committed'],
      ['second', 'pending'],
    ]);
  });
});
