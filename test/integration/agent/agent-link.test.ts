// The box's fleet link against a real broker over mutual TLS: online status and telemetry on
// schedule, commands, a broker that goes away and comes back, a refused certificate, a clean stop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAppliance } from '../../../appliance/appliance.ts';
import { FIRMWARE_VERSION } from '../../../appliance/agent/firmware.ts';
import { CommandResponse, ReportedConfig, StatusMessage, Telemetry } from '../../../shared/fleet/messages.ts';
import { echoscu, storescu } from '../../helpers/dcmtk.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { writeSyntheticDicom } from '../../helpers/synthetic.ts';
import { connectFleet, createAgentPki, createBroker, getJson, startFleetBox, writeIdentity, type AgentPki, type FleetSide, type TestBroker } from './harness.ts';

const ajv = new Ajv({ strict: false, allErrors: true });
const valid = { telemetry: ajv.compile(Telemetry), status: ajv.compile(StatusMessage), reported: ajv.compile(ReportedConfig), response: ajv.compile(CommandResponse) };
const ID = 'mb-link0001';
const T = { status: `mbox/${ID}/status`, telemetry: `mbox/${ID}/telemetry`, reported: `mbox/${ID}/config/reported` };

let pki: AgentPki;
let broker: TestBroker;
let fleet: FleetSide;
let box: RunningAppliance;
let dataDir: string;

beforeAll(async () => {
  pki = createAgentPki();
  broker = await createBroker(pki);
  await broker.start();
  fleet = await connectFleet(broker, pki);
  dataDir = mkdtempSync(join(tmpdir(), 'mbox-agent-link-'));
  writeIdentity(dataDir, pki, ID, broker.url);
  box = await startFleetBox(dataDir);
});

afterAll(async () => {
  await box?.stop();
  await fleet?.close();
  await broker?.stop();
  pki?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('box agent link', () => {
  it('comes online (retained), reports its config and sends schema-valid telemetry every interval', async () => {
    const online = await fleet.waitFor(T.status, (b) => b.online === true);
    expect(valid.status(online.body)).toBe(true);
    expect(online.body).toMatchObject({ online: true, reason: 'connected', firmware: FIRMWARE_VERSION });
    const reported = await fleet.waitFor(T.reported);
    expect(valid.reported(reported.body), JSON.stringify(valid.reported.errors)).toBe(true);
    expect(reported.body).toMatchObject({ version: 0, status: 'none', firmware: FIRMWARE_VERSION, effective: { aeTitle: 'MBOX' } });
    expect(reported.body.effective).not.toHaveProperty('dataDir');

    await waitUntil(async () => fleet.messages.filter((m) => m.topic === T.telemetry).length >= 4, 10_000, 'four telemetry messages');
    const ts = fleet.messages.filter((m) => m.topic === T.telemetry);
    for (const t of ts) expect(valid.telemetry(t.body), JSON.stringify(valid.telemetry.errors)).toBe(true);
    const seqs = ts.map((t) => t.body.seq as number);
    expect(seqs.slice(1).every((s, i) => s > seqs[i]!)).toBe(true);
    // The first one goes out on connect; from then on, one per interval.
    const timed = ts.slice(1);
    const gaps = timed.slice(1).map((t, i) => t.at - timed[i]!.at);
    for (const g of gaps) expect(g).toBeGreaterThan(600);
    expect(ts.at(-1)!.body).toMatchObject({ firmware: FIRMWARE_VERSION, pipeline: { diskAccepting: true, lastError: null } });
    // A retained status for anyone who looks later (the dashboard after a restart).
    const late = await connectFleet(broker, pki);
    try {
      expect((await late.waitFor(T.status)).retain).toBe(true);
    } finally {
      await late.close();
    }
  });

  it('shows the link on the local API', async () => {
    const a = await getJson(box.httpPort, '/api/agent');
    expect(a).toMatchObject({ configured: true, connected: true, deviceId: ID, link: 'connected', enrolment: { state: 'enrolled', deviceId: ID }, reportedStatus: 'none' });
    expect(typeof a.lastTelemetryAt).toBe('string');
  });

  it('answers ping, refuses expired and unknown commands', async () => {
    const pong = await fleet.command(ID, 'ping');
    expect(valid.response(pong)).toBe(true);
    expect(pong).toMatchObject({ status: 'ok', result: { pong: true, uptimeS: expect.any(Number) } });
    expect(await fleet.command(ID, 'ping', {}, -1000)).toMatchObject({ status: 'expired' });
    expect(await fleet.command(ID, 'self-destruct')).toMatchObject({ status: 'unknown-command' });
    expect(await fleet.command(ID, 'fetch-logs', { lines: 'many' })).toMatchObject({ status: 'error', error: 'args.lines: must be integer' });
  });

  it('returns recent log lines', async () => {
    const res = await fleet.command(ID, 'fetch-logs', { lines: 500 });
    expect(res.status).toBe('ok');
    const lines = (res.result as { lines: Array<{ msg: string; level: number }> }).lines;
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.some((l) => l.msg === 'fleet link up')).toBe(true);
    const warnings = await fleet.command(ID, 'fetch-logs', { level: 'error' });
    expect((warnings.result as { lines: Array<{ level: number }> }).lines.every((l) => l.level >= 50)).toBe(true);
  });

  it('restarts its services on command and keeps answering DICOM', async () => {
    const port = box.runtime.dicomPort;
    const res = await fleet.command(ID, 'restart');
    expect(res).toMatchObject({ status: 'ok', result: { restarted: true, dicomPort: port } });
    expect((await echoscu({ port, calledAe: 'MBOX' })).code).toBe(0);
    expect((await fleet.command(ID, 'ping')).status).toBe('ok');
  });

  it('keeps taking C-STOREs while the broker is down, then reconnects and reports', async () => {
    await broker.stop();
    await waitUntil(async () => (await getJson(box.httpPort, '/api/agent')).connected === false, 10_000, 'link down');
    const files = await Promise.all([1, 2, 3].map(async (i) => {
      const f = join(dataDir, `in-${i}.dcm`);
      await writeSyntheticDicom(f, { frames: 1, rows: 32, columns: 32, studyInstanceUid: '2.25.1234' });
      return f;
    }));
    const sent = await storescu(files, { port: box.runtime.dicomPort, calledAe: 'MBOX' });
    expect(sent.code, sent.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 2500)); // telemetry ticks while offline: only the latest waits
    const since = Date.now();
    await broker.start();
    await fleet.waitFor(T.status, (b) => b.online === true, 20_000, since);
    await fleet.waitFor(T.reported, () => true, 10_000, since);
    const t = await fleet.waitFor(T.telemetry, (b) => (b.pipeline as { byState: Record<string, number> }).byState.received === 3, 10_000, since);
    expect(valid.telemetry(t.body)).toBe(true);
    // Not a backlog: the offline ticks were not queued up.
    await new Promise((r) => setTimeout(r, 300));
    expect(fleet.messages.filter((m) => m.topic === T.telemetry && m.at >= since && m.at < since + 250).length).toBeLessThanOrEqual(1);
    expect(await getJson(box.httpPort, '/api/agent')).toMatchObject({ connected: true, link: 'connected' });
  });

  it('shows a refused (revoked) certificate as a failed enrolment and recovers when allowed again', async () => {
    broker.revoked.add(ID);
    broker.kick(ID);
    await waitUntil(async () => (await getJson<{ enrolment: { state: string; code?: string } }>(box.httpPort, '/api/agent')).enrolment.code === 'revoked', 10_000, 'revoked state');
    const a = await getJson(box.httpPort, '/api/agent');
    expect(a).toMatchObject({ connected: false, link: 'refused', enrolment: { state: 'failed', code: 'revoked', retryAt: expect.any(String) } });
    expect((await echoscu({ port: box.runtime.dicomPort, calledAe: 'MBOX' })).code).toBe(0);
    broker.revoked.delete(ID);
    await waitUntil(async () => (await getJson(box.httpPort, '/api/agent')).connected === true, 10_000, 'reconnected after the refusal');
    expect(await getJson(box.httpPort, '/api/agent')).toMatchObject({ enrolment: { state: 'enrolled' } });
  });

  it('says offline clean-stop (retained) when stopped, not connection-lost', async () => {
    const since = Date.now();
    await box.stop();
    const off = await fleet.waitFor(T.status, (b) => b.online === false, 10_000, since);
    expect(off.body).toMatchObject({ online: false, reason: 'clean-stop', firmware: FIRMWARE_VERSION });
    await new Promise((r) => setTimeout(r, 500));
    expect(fleet.messages.some((m) => m.topic === T.status && m.at >= since && m.body.reason === 'connection-lost')).toBe(false);
    const late = await connectFleet(broker, pki);
    try {
      expect((await late.waitFor(T.status)).body).toMatchObject({ online: false, reason: 'clean-stop' });
    } finally {
      await late.close();
    }
  });
});
