// The device service against a real registry and an in-memory bus: message handling, desired
// configs, commands (answer, timeout, stray answers), revocation, metrics.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../../../../fleet/devices/registry.ts';
import { ConfigInvalidError, DeviceRevokedError, DeviceService, UnknownDeviceError } from '../../../../fleet/devices/service.ts';
import type { BrokerControl } from '../../../../fleet/types.ts';
import { topics } from '../../../../shared/fleet/topics.ts';
import { createLogger } from '../../../../shared/log.ts';
import { FakeBus, fleetConfig, identity, MemoryAudit, telemetry } from './fixtures.ts';

const log = createLogger('silent');
const ID = 'mb-aaaa1111';
let dir: string;
let reg: DeviceRegistry;
let bus: FakeBus;
let audit: MemoryAudit;
let svc: DeviceService;
const disconnected: string[] = [];
const broker: BrokerControl = { disconnect: (id) => void disconnected.push(id), connectedCount: () => 0, close: async () => {} };

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = await svc.metrics.registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-devsvc-'));
  reg = await DeviceRegistry.open(dir, log);
  await reg.register(identity(ID));
  bus = new FakeBus();
  audit = new MemoryAudit();
  svc = new DeviceService({ registry: reg, bus, audit, config: fleetConfig({ commandTimeoutMs: 5000 }), broker, log });
  await svc.start();
});

afterEach(async () => {
  await svc.stop();
  await reg.close();
  await rm(dir, { recursive: true, force: true });
});

describe('DeviceService messages', () => {
  it('status, telemetry and reports update the device; latency and counts are measured', async () => {
    bus.deliver(ID, 'status', { online: true, at: new Date().toISOString(), reason: 'connected', firmware: '0.2.0' });
    bus.deliver(ID, 'telemetry', telemetry({ at: new Date(Date.now() - 250).toISOString(), disk: 91 }));
    bus.deliver(ID, 'config/reported', { version: 0, status: 'none', steps: [], at: new Date().toISOString(), firmware: '0.2.0', effective: {} });
    const d = svc.detail(ID);
    expect(d).toMatchObject({ online: true, health: 'warning', firmware: '0.1.0', reportedVersion: 0 });
    expect(d?.history).toHaveLength(1);
    expect(d?.alertList.map((a) => a.kind)).toEqual(['disk']);
    expect(d?.events.map((e) => e.event)).toEqual(['online', 'enrolled']);
    expect(await metricValue('mbox_fleet_messages_total', { kind: 'telemetry' })).toBe(1);
    const text = await svc.metrics.registry.metrics();
    expect(text).toMatch(/mbox_fleet_telemetry_latency_seconds\{quantile="0.99"\} 0\.2/);
    expect(text).toContain('mbox_fleet_devices{state="online"} 1');
  });

  it('drops invalid payloads and unknown devices without throwing', async () => {
    bus.deliver(ID, 'telemetry', { at: 'now', seq: -1 });
    bus.deliver(ID, 'status', 'garbage');
    bus.deliver('mb-zzzz9999', 'status', { online: true, at: new Date().toISOString() });
    bus.deliver(ID, 'commands/res', { id: 'nope-0000', status: 'ok', at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 20));
    expect(await metricValue('mbox_fleet_messages_invalid_total', { kind: 'telemetry' })).toBe(1);
    expect(await metricValue('mbox_fleet_messages_invalid_total', { kind: 'status' })).toBe(1);
    expect(await metricValue('mbox_fleet_messages_ignored_total', { reason: 'unknown-device' })).toBe(1);
    expect(await metricValue('mbox_fleet_messages_ignored_total', { reason: 'stray-answer' })).toBe(1);
    expect(svc.detail(ID)?.telemetry).toBeNull();
  });

  it('a rejected report raises an alert and an event', () => {
    bus.deliver(ID, 'config/reported', { version: 1, status: 'rejected', error: '/dicomPort: bad', steps: [], at: new Date().toISOString(), firmware: '0.1.0', effective: {} });
    expect(svc.alertsOf(ID).map((a) => a.kind)).toEqual(['config-rejected']);
    expect(svc.alerts()).toHaveLength(1);
    expect(svc.overview()).toMatchObject({ devices: 1, online: 0, byHealth: { warning: 1 } });
    expect(svc.detail(ID)?.events[0]).toMatchObject({ event: 'config-rejected' });
  });
});

describe('DeviceService desired config', () => {
  it('validates, versions and publishes retained; force skips validation', async () => {
    const d1 = await svc.setDesired(ID, { logLevel: 'debug', destinations: [{ name: 'cloud', url: 'https://pacs.example/dicom-web' }] }, 'ops');
    expect(d1.version).toBe(1);
    expect(bus.published.at(-1)).toEqual({ topic: topics.desired(ID), payload: d1, opts: { retain: true, qos: 1 } });
    const err = await svc.setDesired(ID, { dicomPort: 70000, dataDir: '/tmp' }, 'ops').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigInvalidError);
    expect((err as ConfigInvalidError).errors.join('\n')).toMatch(/\/dicomPort/);
    expect((err as ConfigInvalidError).errors.join('\n')).toMatch(/\/dataDir/);
    const forced = await svc.setDesired(ID, { dicomPort: 70000 }, 'admin', { force: true });
    expect(forced.version).toBe(2);
    expect(audit.entries.map((e) => `${e.action}:${e.outcome}`)).toEqual(['device.config.set:ok', 'device.config.set:refused', 'device.config.set:ok']);
    await expect(svc.setDesired('mb-none0000', {}, 'ops')).rejects.toBeInstanceOf(UnknownDeviceError);
  });

  it('republishes every desired config retained on start', async () => {
    await svc.setDesired(ID, { logLevel: 'warn' }, 'ops');
    await svc.stop();
    const bus2 = new FakeBus();
    const svc2 = new DeviceService({ registry: reg, bus: bus2, audit, config: fleetConfig(), log });
    await svc2.start();
    expect(bus2.published).toEqual([{ topic: topics.desired(ID), payload: expect.objectContaining({ version: 1, config: { logLevel: 'warn' } }), opts: { retain: true, qos: 1 } }]);
    await svc2.stop();
  });
});

describe('DeviceService commands', () => {
  it('publishes QoS 1, completes on the answer and wakes waiters', async () => {
    const rec = await svc.sendCommand(ID, 'ping', {}, 'ops');
    expect(rec.status).toBe('pending');
    const req = bus.published.at(-1);
    expect(req).toMatchObject({ topic: topics.commandRequest(ID), opts: { qos: 1, retain: false }, payload: { id: rec.id, name: 'ping' } });
    expect(Date.parse(rec.expiresAt) - Date.parse(rec.issuedAt)).toBe(5000);
    const waiting = svc.waitFor(rec.id, 2000);
    // Another device may not answer it.
    bus.deliver('mb-bbbb2222', 'commands/res', { id: rec.id, status: 'ok', at: new Date().toISOString() });
    await reg.register(identity('mb-bbbb2222'));
    bus.deliver('mb-bbbb2222', 'commands/res', { id: rec.id, status: 'ok', at: new Date().toISOString() });
    bus.deliver(ID, 'commands/res', { id: rec.id, status: 'ok', result: { pong: true }, at: new Date().toISOString() });
    const done = await waiting;
    expect(done).toMatchObject({ status: 'ok', result: { pong: true } });
    expect(await svc.getCommand(rec.id)).toMatchObject({ status: 'ok' });
    expect((await svc.listCommands(ID)).map((r) => r.id)).toEqual([rec.id]);
    expect(audit.entries.at(-1)).toMatchObject({ action: 'device.command', target: ID, actor: 'ops' });
  });

  it('times out, and keeps a late answer without changing the status', async () => {
    const rec = await svc.sendCommand(ID, 'restart', {}, 'ops', 150);
    const done = await svc.waitFor(rec.id, 3000);
    expect(done).toMatchObject({ status: 'timed-out' });
    bus.deliver(ID, 'commands/res', { id: rec.id, status: 'ok', at: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 50));
    expect(await svc.getCommand(rec.id)).toMatchObject({ status: 'timed-out', answeredAt: expect.any(String) });
  });

  it('a failed publish ends the command as error', async () => {
    bus.failPublish = true;
    const rec = await svc.sendCommand(ID, 'ping', {}, 'ops');
    expect(rec).toMatchObject({ status: 'error', error: expect.stringContaining('broker gone') });
  });

  it('pending commands survive a restart and time out then', async () => {
    const rec = await svc.sendCommand(ID, 'ping', {}, 'ops', 300);
    await svc.stop();
    const svc2 = new DeviceService({ registry: reg, bus: new FakeBus(), audit, config: fleetConfig(), log });
    await svc2.start();
    expect(await svc2.waitFor(rec.id, 3000)).toMatchObject({ status: 'timed-out' });
    await svc2.stop();
  });
});

describe('DeviceService revoke', () => {
  it('revokes, disconnects, publishes the offline status and ignores the device afterwards', async () => {
    bus.deliver(ID, 'status', { online: true, at: new Date().toISOString() });
    expect(await svc.revoke(ID, 'admin')).toBe(true);
    expect(reg.isRevoked(ID)).toBe(true);
    expect(disconnected).toContain(ID);
    expect(bus.published.at(-1)).toMatchObject({ topic: topics.status(ID), payload: { online: false, reason: 'revoked' }, opts: { retain: true } });
    expect(svc.detail(ID)).toMatchObject({ online: false, revoked: true, health: 'unknown' });
    bus.deliver(ID, 'status', { online: true, at: new Date().toISOString() });
    expect(svc.detail(ID)?.online).toBe(false);
    expect(audit.entries.at(-1)).toMatchObject({ action: 'device.revoke', target: ID, outcome: 'ok' });
    await expect(svc.sendCommand(ID, 'ping', {}, 'ops')).rejects.toBeInstanceOf(DeviceRevokedError);
  });
});
