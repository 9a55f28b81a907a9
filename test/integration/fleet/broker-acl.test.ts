// The fleet's MQTT security model proven with real mqtt.js clients over mutual TLS, against both
// broker modes: the embedded aedes broker and Debian mosquitto configured by writeMosquittoConfig.
// Every "never delivered" assertion is anchored by a message published right after it that IS
// delivered, so nothing passes just because delivery was slow.
import { randomBytes } from 'node:crypto';
import { connect, type IClientOptions, type ISubscriptionGrant, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectFleetBus, type ConnectedFleetBus } from '../../../fleet/broker/bus.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../../fleet/broker/embedded.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../../shared/fleet/topics.ts';
import { createLogger } from '../../../shared/log.ts';
import { startMosquitto, type RunningMosquitto } from '../../helpers/mosquitto.ts';
import { createMqttTestPki, type IssuedLeaf, type MqttTestPki } from '../../helpers/mqtt-pki.ts';
import { LOOPBACK, waitUntil } from '../../helpers/ports.ts';

const log = createLogger('silent');
const QUIET_MS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class FakeDirectory {
  readonly revoked = new Set<string>();
  readonly current = new Map<string, string>();
  isRevoked = (id: string): boolean => this.revoked.has(id);
  isCurrentSerial = (id: string, serial: string): boolean => this.current.get(id) === serial;
}

type Mode = 'aedes' | 'mosquitto';
interface FleetMsg {
  deviceId: string;
  kind: string;
  payload: unknown;
}
interface Device extends IssuedLeaf {
  id: string;
}

let pki: MqttTestPki;
beforeAll(() => {
  pki = createMqttTestPki();
});
afterAll(() => pki?.remove());

describe.each<Mode>(['aedes', 'mosquitto'])('%s broker', (mode) => {
  const directory = new FakeDirectory();
  let embedded: EmbeddedBroker | undefined;
  let mosquitto: RunningMosquitto | undefined;
  let url: string;
  let fleetCert: IssuedLeaf;
  let bus: ConnectedFleetBus;
  let fleetInbox: FleetMsg[] = [];
  const clients: MqttClient[] = [];

  const openBus = async (): Promise<ConnectedFleetBus> => {
    const b = await connectFleetBus({ url, caPem: pki.ca.certPem, certPem: fleetCert.certPem, keyPem: fleetCert.keyPem, log });
    b.onDeviceMessage((deviceId, kind, payload) => fleetInbox.push({ deviceId, kind, payload }));
    return b;
  };

  beforeAll(async () => {
    fleetCert = pki.issue(FLEET_SERVICE_IDENTITY);
    if (mode === 'aedes') {
      embedded = await startEmbeddedBroker({
        host: LOOPBACK,
        port: 0,
        tls: { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem },
        directory,
        log,
      });
      url = `mqtts://${LOOPBACK}:${embedded.port}`;
    } else {
      mosquitto = await startMosquitto({ caPem: pki.ca.certPem, serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem });
      url = mosquitto.url;
    }
    bus = await openBus();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  afterAll(async () => {
    await bus?.close();
    await embedded?.close();
    await mosquitto?.stop();
  });

  const newDevice = (): Device => {
    const id = `mb-${randomBytes(4).toString('hex')}`;
    const leaf = pki.issue(id);
    directory.current.set(id, leaf.serial);
    return { id, ...leaf };
  };

  /** Connects; resolves with the client, or rejects with the broker's or TLS layer's refusal. */
  const open = (leaf: Partial<IssuedLeaf>, clientId: string, extra: IClientOptions = {}): Promise<MqttClient> =>
    new Promise((resolve, reject) => {
      const c = connect(url, { ca: pki.ca.certPem, cert: leaf.certPem, key: leaf.keyPem, clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...extra });
      clients.push(c);
      c.once('connect', () => resolve(c));
      c.once('error', (err) => {
        c.end(true);
        reject(err);
      });
      c.once('close', () => reject(new Error('connection closed before CONNACK')));
    });
  const inbox = (c: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> => {
    const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
    c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
    return got;
  };
  const fleetGot = (deviceId: string, kind: string, pred: (p: unknown) => boolean = () => true) =>
    waitUntil(async () => fleetInbox.some((m) => m.deviceId === deviceId && m.kind === kind && pred(m.payload)), 5000, `fleet to receive ${kind} from ${deviceId}`);
  const marker = async (c: MqttClient, d: Device): Promise<void> => {
    const seq = Math.random();
    await c.publishAsync(topics.telemetry(d.id), JSON.stringify({ marker: seq }), { qos: 1 });
    await fleetGot(d.id, 'telemetry', (p) => (p as { marker?: number }).marker === seq);
    await sleep(QUIET_MS);
  };
  /** SUBACK return codes; mqtt.js rejects a SUBACK with any 0x80 in it, the codes ride on the error. */
  const subscribe = async (c: MqttClient, subs: Record<string, { qos: 0 | 1 }>): Promise<number[]> => {
    try {
      return (await c.subscribeAsync(subs)).map((g: ISubscriptionGrant) => g.qos);
    } catch (err) {
      const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
      if (!granted) throw err;
      return granted;
    }
  };

  it('delivers telemetry to the fleet bus with the device id from the topic', async () => {
    const a = newDevice();
    const ca = await open(a, a.id);
    await ca.publishAsync(topics.telemetry(a.id), JSON.stringify({ seq: 1 }), { qos: 1 });
    await fleetGot(a.id, 'telemetry', (p) => (p as { seq?: number }).seq === 1);
    expect(bus.connected).toBe(true);
  });

  it("keeps a device out of other devices' topics when it subscribes", async () => {
    const [a, b] = [newDevice(), newDevice()];
    const cb = await open(b, b.id);
    const bGot = inbox(cb);
    const granted = await subscribe(cb, { [`mbox/${a.id}/#`]: { qos: 1 }, 'mbox/+/telemetry': { qos: 1 }, '#': { qos: 0 }, [topics.desired(a.id)]: { qos: 1 } });
    // aedes answers SUBACK 0x80; mosquitto 2.0's acl_file grants every SUBSCRIBE and checks read
    // access on each delivery instead. Either way nothing of A's may arrive.
    expect(granted).toEqual(mode === 'aedes' ? [128, 128, 128, 128] : [1, 1, 0, 1]);
    const ca = await open(a, a.id);
    await ca.publishAsync(topics.status(a.id), JSON.stringify({ online: true, at: new Date().toISOString() }), { qos: 1, retain: true });
    await bus.publish(topics.desired(a.id), { version: 1, config: {}, issuedAt: new Date().toISOString(), issuedBy: 'test' }, { retain: true, qos: 1 });
    await marker(ca, a);
    expect(bGot).toEqual([]);
  });

  it('withholds refused filters from a persistent session too (queued while offline)', async () => {
    const [a, b] = [newDevice(), newDevice()];
    let cb = await open(b, b.id, { clean: false });
    expect(await subscribe(cb, { 'mbox/+/telemetry': { qos: 1 }, [topics.commandRequest(b.id)]: { qos: 1 } })).toEqual(mode === 'aedes' ? [128, 1] : [1, 1]);
    await cb.endAsync();
    const ca = await open(a, a.id);
    await ca.publishAsync(topics.telemetry(a.id), JSON.stringify({ offline: true }), { qos: 1 });
    await bus.publish(topics.commandRequest(b.id), { id: 'cmd-own-0001' }, { qos: 1 });
    cb = await open(b, b.id, { clean: false });
    const bGot = inbox(cb);
    await waitUntil(async () => bGot.some((m) => m.topic === topics.commandRequest(b.id)), 5000, 'B to get its own queued command');
    await marker(ca, a);
    expect(bGot.map((m) => m.topic)).toEqual([topics.commandRequest(b.id)]);
  });

  it('discards publishes outside the device tree and to what the fleet sends it', async () => {
    const [a, b] = [newDevice(), newDevice()];
    const cb = await open(b, b.id);
    const bGot = inbox(cb);
    await cb.subscribeAsync({ [topics.desired(b.id)]: { qos: 1 }, [topics.commandRequest(b.id)]: { qos: 1 } });
    const ca = await open(a, a.id);
    const aGot = inbox(ca);
    await ca.subscribeAsync({ [topics.desired(a.id)]: { qos: 1 } });
    const forged = JSON.stringify({ forged: true, online: true, at: new Date().toISOString() });
    await ca.publishAsync(topics.telemetry(b.id), forged, { qos: 1 });
    await ca.publishAsync(topics.status(b.id), forged, { qos: 1, retain: true });
    await ca.publishAsync(topics.desired(b.id), forged, { qos: 1, retain: true });
    await ca.publishAsync(topics.desired(a.id), forged, { qos: 1, retain: true });
    await ca.publishAsync(topics.commandRequest(a.id), forged, { qos: 1 });
    await ca.publishAsync('other/topic', forged, { qos: 0 });
    // Silently discarded in both modes: A stays connected and its next message gets through.
    await marker(ca, a);
    expect(ca.connected).toBe(true);
    expect(fleetInbox.filter((m) => m.deviceId === b.id)).toEqual([]);
    expect(bGot).toEqual([]);
    expect(aGot).toEqual([]);
    // Nothing forged was retained either: a late subscriber to B's desired config gets nothing.
    const late = await open(b, b.id);
    const lateGot = inbox(late);
    await late.subscribeAsync({ [topics.desired(b.id)]: { qos: 1 } });
    await bus.publish(topics.desired(b.id), { version: 2 }, { qos: 1 });
    await waitUntil(async () => lateGot.length > 0, 5000, 'the real desired config');
    expect(lateGot.map((m) => JSON.parse(m.payload))).toEqual([{ version: 2 }]);
  });

  it('does not let a device read its own outbound topics', async () => {
    const a = newDevice();
    const ca = await open(a, a.id);
    const aGot = inbox(ca);
    const granted = await subscribe(ca, { [topics.telemetry(a.id)]: { qos: 1 } });
    expect(granted).toEqual(mode === 'aedes' ? [128] : [1]);
    await marker(ca, a);
    expect(aGot).toEqual([]);
  });

  it("gives a client that claims another device's client id only its certificate's identity", async () => {
    const [a, b] = [newDevice(), newDevice()];
    const ca = await open(a, a.id);
    if (mode === 'aedes') {
      await expect(open(b, a.id)).rejects.toThrow(/Not authorized/i);
    } else {
      // mosquitto replaces the client id with the certificate CN (use_username_as_clientid).
      const impostor = await open(b, a.id);
      const got = inbox(impostor);
      await impostor.subscribeAsync({ [topics.commandRequest(a.id)]: { qos: 1 } });
      await impostor.publishAsync(topics.telemetry(a.id), JSON.stringify({ impostor: true }), { qos: 1 });
      await bus.publish(topics.commandRequest(a.id), { id: 'cmd-for-a-0001' }, { qos: 1 });
      await impostor.publishAsync(topics.telemetry(b.id), JSON.stringify({ asB: true }), { qos: 1 });
      await fleetGot(b.id, 'telemetry', (p) => (p as { asB?: boolean }).asB === true);
      await marker(ca, a);
      expect(got).toEqual([]);
      expect(fleetInbox.some((m) => m.deviceId === a.id && (m.payload as { impostor?: boolean }).impostor)).toBe(false);
    }
    // A was not kicked off by the claim.
    await sleep(200);
    expect(ca.connected).toBe(true);
    await marker(ca, a);
  });

  it('refuses a client without a certificate, and one from another CA', async () => {
    const a = newDevice();
    await expect(open({}, a.id)).rejects.toThrow(/certificate required|alert|socket|closed/i);
    const rogue = pki.issueRogue(a.id);
    await expect(open(rogue, a.id)).rejects.toThrow(/unknown ca|alert|socket|closed/i);
  });

  it('publishes the last will as retained connection-lost when a box vanishes', async () => {
    const a = newDevice();
    const will = { online: false, reason: 'connection-lost', at: new Date().toISOString() };
    const ca = await open(a, a.id, { will: { topic: topics.status(a.id), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true } });
    await ca.publishAsync(topics.status(a.id), JSON.stringify({ online: true, at: new Date().toISOString() }), { qos: 1, retain: true });
    await fleetGot(a.id, 'status', (p) => (p as { online?: boolean }).online === true);
    ca.stream.destroy();
    await fleetGot(a.id, 'status', (p) => (p as { reason?: string }).reason === 'connection-lost');
    // A fleet that (re)connects later learns it from the retained status.
    await bus.close();
    fleetInbox = [];
    bus = await openBus();
    await fleetGot(a.id, 'status', (p) => (p as { online?: boolean; reason?: string }).online === false && (p as { reason?: string }).reason === 'connection-lost');
  });

  it("never lets a box's will speak for another box", async () => {
    const [a, b] = [newDevice(), newDevice()];
    const forgedWill = { topic: topics.status(b.id), payload: Buffer.from(JSON.stringify({ online: false, reason: 'connection-lost', at: new Date().toISOString() })), qos: 1 as const, retain: true };
    if (mode === 'aedes') {
      await expect(open(a, a.id, { will: forgedWill })).rejects.toThrow(/Not authorized/i);
    } else {
      // mosquitto accepts the CONNECT but checks the will like a publish when it fires.
      const ca = await open(a, a.id, { will: forgedWill });
      ca.stream.destroy();
    }
    const honest = await open(a, a.id);
    await marker(honest, a);
    expect(fleetInbox.filter((m) => m.deviceId === b.id)).toEqual([]);
  });

  it('delivers retained desired config to a box, also when it subscribes later', async () => {
    const a = newDevice();
    const ca = await open(a, a.id);
    const got = inbox(ca);
    await ca.subscribeAsync({ [topics.desired(a.id)]: { qos: 1 } });
    const desired = { version: 3, config: { aeTitle: 'CLINIC' }, issuedAt: new Date().toISOString(), issuedBy: 'admin' };
    await bus.publish(topics.desired(a.id), desired, { retain: true, qos: 1 });
    await waitUntil(async () => got.length === 1, 5000, 'desired config live');
    expect(JSON.parse(got[0]!.payload)).toEqual(desired);
    await ca.endAsync();
    const again = await open(a, a.id);
    const later = inbox(again);
    await again.subscribeAsync({ [topics.desired(a.id)]: { qos: 1 } });
    await waitUntil(async () => later.length === 1, 5000, 'retained desired config');
    expect(later[0]!.retain).toBe(true);
    expect(JSON.parse(later[0]!.payload)).toEqual(desired);
  });

  it('queues a QoS 1 command for an offline box with a persistent session', async () => {
    const a = newDevice();
    const first = await open(a, a.id, { clean: false });
    await first.subscribeAsync({ [topics.commandRequest(a.id)]: { qos: 1 } });
    await first.endAsync();
    const cmd = { id: 'cmd-0000-0001', name: 'ping', args: {}, issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() };
    await bus.publish(topics.commandRequest(a.id), cmd, { qos: 1 });
    // The handler must be in place before CONNACK: the queue is flushed right after it.
    const got: string[] = [];
    const back = connect(url, { ca: pki.ca.certPem, cert: a.certPem, key: a.keyPem, clientId: a.id, protocolVersion: 4, reconnectPeriod: 0, clean: false });
    clients.push(back);
    back.on('message', (topic, payload) => topic === topics.commandRequest(a.id) && got.push(payload.toString()));
    await waitUntil(async () => got.length === 1, 5000, 'queued command');
    expect(JSON.parse(got[0]!)).toEqual(cmd);
  });
});
