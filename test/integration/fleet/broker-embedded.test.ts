// What only the embedded aedes broker can do: consult the device directory at every connect
// (revoked boxes, superseded certificates after a renewal), drop a live box on demand, and count
// its refusals.
import { randomBytes } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../../fleet/broker/embedded.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../../shared/fleet/topics.ts';
import { createLogger } from '../../../shared/log.ts';
import { createMqttTestPki, type IssuedLeaf, type MqttTestPki } from '../../helpers/mqtt-pki.ts';
import { LOOPBACK, waitUntil } from '../../helpers/ports.ts';

const log = createLogger('silent');
const revoked = new Set<string>();
const current = new Map<string, string>();
const directory = { isRevoked: (id: string) => revoked.has(id), isCurrentSerial: (id: string, serial: string) => current.get(id) === serial };

let pki: MqttTestPki;
let broker: EmbeddedBroker;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  pki = createMqttTestPki();
  broker = await startEmbeddedBroker({ host: LOOPBACK, port: 0, tls: { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem }, directory, log });
  url = `mqtts://${LOOPBACK}:${broker.port}`;
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});
afterAll(async () => {
  await broker?.close();
  pki?.remove();
});

const newDevice = (): IssuedLeaf & { id: string } => {
  const id = `mb-${randomBytes(4).toString('hex')}`;
  const leaf = pki.issue(id);
  current.set(id, leaf.serial);
  return { id, ...leaf };
};

const open = (leaf: IssuedLeaf, clientId: string, extra: IClientOptions = {}): Promise<MqttClient> =>
  new Promise((resolve, reject) => {
    const c = connect(url, { ca: pki.ca.certPem, cert: leaf.certPem, key: leaf.keyPem, clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...extra });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
    // A refused TLS 1.3 client certificate can end in a bare close, without an alert.
    c.once('close', () => reject(new Error('connection closed before CONNACK')));
  });

describe('embedded broker', () => {
  it('refuses a revoked device at connect and counts the reason', async () => {
    const a = newDevice();
    revoked.add(a.id);
    const before = broker.stats().refusals['connect:revoked'] ?? 0;
    await expect(open(a, a.id)).rejects.toThrow(/Not authorized/i);
    expect(broker.stats().refusals['connect:revoked']).toBe(before + 1);
  });

  it('refuses a superseded certificate after renewal and admits the new one', async () => {
    const a = newDevice();
    const renewed = pki.issue(a.id);
    current.set(a.id, renewed.serial);
    await expect(open(a, a.id)).rejects.toThrow(/Not authorized/i);
    expect(broker.stats().refusals['connect:superseded-certificate']).toBeGreaterThanOrEqual(1);
    const c = await open(renewed, a.id);
    expect(c.connected).toBe(true);
  });

  it('refuses a certificate from the fleet CA whose CN is not a device or the fleet service', async () => {
    const odd = pki.issue('localhost');
    await expect(open(odd, 'localhost')).rejects.toThrow(/Not authorized/i);
    expect(broker.stats().refusals['connect:unknown-identity']).toBeGreaterThanOrEqual(1);
  });

  it('counts TLS handshakes refused for a missing or foreign certificate', async () => {
    const before = broker.stats().refusals.tls ?? 0;
    const rogue = pki.issueRogue('mb-rogue0001');
    await expect(open(rogue, 'mb-rogue0001')).rejects.toThrow();
    await waitUntil(async () => (broker.stats().refusals.tls ?? 0) > before, 5000, 'the TLS refusal to be counted');
  });

  it('disconnect() drops a live device; connectedCount() follows', async () => {
    const [a, b] = [newDevice(), newDevice()];
    const base = broker.connectedCount();
    // The fleet service's own connection is not a device.
    await open(pki.issue(FLEET_SERVICE_IDENTITY), FLEET_SERVICE_IDENTITY);
    const ca = await open(a, a.id);
    await open(b, b.id);
    await waitUntil(async () => broker.connectedCount() === base + 2, 5000, 'two connected');
    const closed = new Promise<void>((resolve) => ca.once('close', () => resolve()));
    revoked.add(a.id);
    broker.disconnect(a.id);
    await closed;
    expect(ca.connected).toBe(false);
    await waitUntil(async () => broker.connectedCount() === base + 1, 5000, 'one connected');
    // And it cannot come back.
    await expect(open(a, a.id)).rejects.toThrow(/Not authorized/i);
    broker.disconnect('mb-notconnected');
  });

  it('keeps a session to one connection per identity: a reconnect replaces the old one', async () => {
    const a = newDevice();
    const first = await open(a, a.id);
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    const second = await open(a, a.id);
    await closed;
    expect(second.connected).toBe(true);
    const c2 = second;
    await c2.publishAsync(topics.status(a.id), JSON.stringify({ online: true }), { qos: 1 });
  });

  it('counts a discarded publish and keeps the client connected', async () => {
    const a = newDevice();
    const before = broker.stats().refusals.publish ?? 0;
    const c = await open(a, a.id);
    await c.publishAsync('mbox/mb-someoneelse/telemetry', '{}', { qos: 1 });
    expect(broker.stats().refusals.publish).toBe(before + 1);
    expect(c.connected).toBe(true);
  });

  it("the fleet's in-process bus publishes retained offers, and undefined withdraws them", async () => {
    const a = newDevice();
    const topic = topics.updateOffer(a.id);
    await broker.bus.publish(topic, { version: '1.2.0' }, { retain: true, qos: 1 });
    const retainedOn = async (): Promise<string[]> => {
      const c = await open(a, a.id, { clean: true });
      const got: string[] = [];
      c.on('message', (t, payload) => t === topic && got.push(payload.toString()));
      await c.subscribeAsync(topic, { qos: 1 });
      await new Promise((r) => setTimeout(r, 300));
      await c.endAsync(true);
      return got;
    };
    expect(await retainedOn()).toEqual(['{"version":"1.2.0"}']);
    await broker.bus.publish(topic, undefined, { retain: true, qos: 1 });
    expect(await retainedOn()).toEqual([]);
  });
});
