// Desired vs reported config on a real box: applied live (the DICOM listener answers the new AE
// title), rejected with the key named, failed and rolled back when a port is taken, kept across a
// restart, and a box that cannot boot with it boots on its local config and says why.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAppliance } from '../../../appliance/appliance.ts';
import { ReportedConfig } from '../../../shared/fleet/messages.ts';
import { echoscu } from '../../helpers/dcmtk.ts';
import { freePort, LOOPBACK } from '../../helpers/ports.ts';
import { connectFleet, createAgentPki, createBroker, getJson, startFleetBox, writeIdentity, type AgentPki, type FleetSide, type TestBroker } from './harness.ts';

const validReport = new Ajv({ strict: false }).compile(ReportedConfig);
const ID = 'mb-conf0001';
const T = { desired: `mbox/${ID}/config/desired`, reported: `mbox/${ID}/config/reported`, status: `mbox/${ID}/status` };

let pki: AgentPki;
let broker: TestBroker;
let fleet: FleetSide;
let box: RunningAppliance | undefined;
let dataDir: string;
const blockers: Server[] = [];

async function desire(version: number, config: Record<string, unknown>): Promise<Record<string, unknown>> {
  const since = Date.now();
  await fleet.publish(T.desired, { version, config, issuedAt: new Date().toISOString(), issuedBy: 'test@fleet' }, true);
  const r = await fleet.waitFor(T.reported, (b) => b.version === version, 20_000, since);
  expect(validReport(r.body), JSON.stringify(validReport.errors)).toBe(true);
  return r.body;
}

/** Something else holding a port on the box's address. */
async function occupy(port?: number): Promise<number> {
  const p = port ?? (await freePort());
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(p, LOOPBACK, () => resolve()));
  blockers.push(srv);
  return p;
}

const echo = (port: number, calledAe: string) => echoscu({ port, calledAe, timeoutMs: 10_000 });

beforeAll(async () => {
  pki = createAgentPki();
  broker = await createBroker(pki);
  await broker.start();
  fleet = await connectFleet(broker, pki);
  dataDir = mkdtempSync(join(tmpdir(), 'mbox-agent-config-'));
  writeIdentity(dataDir, pki, ID, broker.url);
  box = await startFleetBox(dataDir);
  await fleet.waitFor(T.reported, (b) => b.status === 'none');
});

afterAll(async () => {
  await box?.stop();
  for (const b of blockers) b.close();
  await fleet?.close();
  await broker?.stop();
  pki?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('desired config', () => {
  it('applies quietTimeMs and aeTitle live: the listener answers the new AE title', async () => {
    const b = box!;
    const port = b.runtime.dicomPort;
    expect((await echo(port, 'MBOX')).code).toBe(0);
    const r = await desire(1, { quietTimeMs: 200, aeTitle: 'FLEETAE' });
    expect(r).toMatchObject({ version: 1, status: 'applied', steps: ['quiet-time (quietTimeMs)', 'dimse-settings (aeTitle)'], effective: { aeTitle: 'FLEETAE', quietTimeMs: 200 } });
    expect((await echo(port, 'FLEETAE')).code).toBe(0);
    expect((await echo(port, 'MBOX')).code).not.toBe(0);
    expect(b.runtime.dicomPort).toBe(port);
    const saved = JSON.parse(readFileSync(join(dataDir, 'agent', 'desired.json'), 'utf8')) as { version: number };
    expect(saved.version).toBe(1);
    expect(await getJson(b.httpPort, '/api/agent')).toMatchObject({ desiredVersion: 1, reportedVersion: 1, reportedStatus: 'applied' });
  });

  it('rejects a forbidden key, naming it, and keeps running as before', async () => {
    const r = await desire(2, { dataDir: '/tmp/elsewhere', aeTitle: 'OTHER' });
    expect(r).toMatchObject({ version: 2, status: 'rejected', steps: [], effective: { aeTitle: 'FLEETAE' } });
    expect(r.error).toContain("forbidden key 'dataDir'");
    expect((await echo(box!.runtime.dicomPort, 'FLEETAE')).code).toBe(0);
    const bad = await desire(3, { dicomPort: 'eleven' });
    expect(bad).toMatchObject({ status: 'rejected', error: 'config.dicomPort: must be integer (got "eleven")' });
  });

  it('fails on a taken port, rolls every step back and keeps the old listener', async () => {
    const b = box!;
    const port = b.runtime.dicomPort;
    const taken = await occupy();
    const r = await desire(4, { aeTitle: 'FLEETAE', quietTimeMs: 200, logLevel: 'debug', dicomPort: taken });
    expect(r).toMatchObject({ version: 4, status: 'failed', steps: ['log-level (logLevel)', 'dimse-listener (dicomPort) — failed'], effective: { aeTitle: 'FLEETAE', logLevel: 'info' } });
    expect(r.error).toContain(`DICOM port ${taken} is already in use`);
    expect(r.error).toContain('rolled back to the previous config');
    expect(b.runtime.config.logLevel).toBe('info');
    expect(b.runtime.dicomPort).toBe(port);
    expect((await echo(port, 'FLEETAE')).code).toBe(0);
    expect((JSON.parse(readFileSync(join(dataDir, 'agent', 'desired.json'), 'utf8')) as { version: number }).version).toBe(1);
  });

  it('moves the listener to a free port', async () => {
    const b = box!;
    const old = b.runtime.dicomPort;
    const next = await freePort();
    const r = await desire(5, { aeTitle: 'FLEETAE', dicomPort: next });
    expect(r).toMatchObject({ status: 'applied', steps: ['quiet-time (quietTimeMs)', 'dimse-listener (dicomPort)'] });
    expect(b.runtime.dicomPort).toBe(next);
    expect((await echo(next, 'FLEETAE')).code).toBe(0);
    expect((await echo(old, 'FLEETAE')).code).not.toBe(0);
  });

  it('ignores a version it already handled (retained redelivery)', async () => {
    const since = Date.now();
    await fleet.publish(T.desired, { version: 3, config: { aeTitle: 'STALE' }, issuedAt: new Date().toISOString(), issuedBy: 'old' }, true);
    await new Promise((r) => setTimeout(r, 1000));
    expect(fleet.messages.some((m) => m.topic === T.reported && m.at >= since)).toBe(false);
    expect(box!.runtime.config.aeTitle).toBe('FLEETAE');
    // Put the fleet's current intent back as the retained message.
    await fleet.publish(T.desired, { version: 5, config: { aeTitle: 'FLEETAE', dicomPort: box!.runtime.dicomPort }, issuedAt: new Date().toISOString(), issuedBy: 'test@fleet' }, true);
  });

  it('boots with the applied desired config and reports it on connect', async () => {
    const port = box!.runtime.dicomPort;
    await box!.stop();
    const since = Date.now();
    box = await startFleetBox(dataDir);
    expect(box.runtime.config).toMatchObject({ aeTitle: 'FLEETAE', dicomPort: port });
    expect((await echo(port, 'FLEETAE')).code).toBe(0);
    const r = await fleet.waitFor(T.reported, () => true, 15_000, since);
    expect(r.body).toMatchObject({ version: 5, status: 'applied', effective: { aeTitle: 'FLEETAE', dicomPort: port } });
  });

  it('boots on the local config when the applied one cannot start, and reports the failure', async () => {
    const port = box!.runtime.dicomPort;
    await box!.stop();
    await occupy(port);
    const since = Date.now();
    box = await startFleetBox(dataDir);
    expect(box.runtime.config.aeTitle).toBe('MBOX');
    expect(box.runtime.dicomPort).not.toBe(port);
    expect((await echo(box.runtime.dicomPort, 'MBOX')).code).toBe(0);
    const r = await fleet.waitFor(T.reported, () => true, 15_000, since);
    expect(r.body).toMatchObject({ version: 5, status: 'failed', effective: { aeTitle: 'MBOX' } });
    expect(r.body.error).toMatch(/^at boot: starting with desired config v5 failed: DICOM port \d+ is already in use; running on the local config$/);
    // The box still follows a new desired config.
    const next = await desire(6, { aeTitle: 'AFTERBOOT' });
    expect(next).toMatchObject({ status: 'applied' });
    expect((await echo(box.runtime.dicomPort, 'AFTERBOOT')).code).toBe(0);
    expect(existsSync(join(dataDir, 'agent', 'desired.json'))).toBe(true);
  });
});
