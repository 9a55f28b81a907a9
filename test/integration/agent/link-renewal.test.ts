// The fleet link on its own: a renewed certificate swaps the connection without the fleet seeing a
// connection loss, and commands keep flowing over the new one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentIdentity } from '../../../appliance/agent/identity.ts';
import { FleetLink } from '../../../appliance/agent/link.ts';
import { createLogger } from '../../../shared/log.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { connectFleet, createAgentPki, createBroker, type AgentPki, type FleetSide, type TestBroker } from './harness.ts';

const ID = 'mb-renew0001';
let pki: AgentPki;
let broker: TestBroker;
let fleet: FleetSide;

beforeAll(async () => {
  pki = createAgentPki();
  broker = await createBroker(pki);
  await broker.start();
  fleet = await connectFleet(broker, pki);
});

afterAll(async () => {
  await fleet?.close();
  await broker?.stop();
  pki?.remove();
});

function identity(fresh: boolean): AgentIdentity {
  const d = pki.device(ID, fresh);
  return { deviceId: ID, group: 'g', labels: {}, fleetUrl: 'https://127.0.0.1:9', mqttUrl: broker.url, keyPem: d.keyPem, certPem: d.certPem, caPem: pki.caPem, notBefore: '', notAfter: '', enrolledAt: '' };
}

describe('fleet link', () => {
  it('reconnects with a renewed certificate without a connection-lost status', async () => {
    const received: unknown[] = [];
    let connects = 0;
    const link = new FleetLink({
      identity: identity(false),
      firmware: 'test',
      log: createLogger('silent'),
      onConnected: () => connects++,
      onMessage: (_kind, body) => received.push(body),
      backoff: { minMs: 100, maxMs: 200 },
    });
    try {
      link.start();
      // Up means subscribed and announced (onConnected), not only connected.
      await waitUntil(async () => link.connected && connects === 1, 10_000, 'first connect');
      const since = Date.now();
      link.replaceIdentity(identity(true));
      await waitUntil(async () => link.connected && connects === 2, 10_000, 'reconnect with the new certificate');
      await fleet.waitFor(`mbox/${ID}/status`, (b) => b.online === true, 5000, since);
      await new Promise((r) => setTimeout(r, 300));
      expect(fleet.messages.some((m) => m.topic === `mbox/${ID}/status` && m.at >= since && m.body.online === false)).toBe(false);
      await fleet.publish(`mbox/${ID}/commands/req`, { id: 'cmd-after-renewal', name: 'ping', args: {}, issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString() });
      await waitUntil(async () => received.some((b) => (b as { id?: string }).id === 'cmd-after-renewal'), 5000, 'command over the new connection');
    } finally {
      await link.stop();
    }
    expect(link.state).toBe('stopped');
  });

  it('keeps only the latest telemetry while it cannot connect', async () => {
    // Refused rather than the broker down, so the fleet side stays subscribed throughout.
    broker.revoked.add(ID);
    const link = new FleetLink({ identity: identity(false), firmware: 'test', log: createLogger('silent'), onConnected: () => undefined, onMessage: () => undefined, refusedRetryMs: 500 });
    try {
      link.start();
      await waitUntil(async () => link.state === 'refused', 10_000, 'refused');
      const t = (seq: number) => ({ at: new Date().toISOString(), seq, firmware: 'test', uptimeS: 0, system: {} as never, pipeline: {} as never, daily: [] });
      for (let i = 0; i < 50; i++) link.publishTelemetry(t(i));
      expect(link.telemetryPending).toBe(true);
      const since = Date.now();
      broker.revoked.delete(ID);
      await waitUntil(async () => link.connected, 10_000, 'connected once allowed');
      await fleet.waitFor(`mbox/${ID}/telemetry`, () => true, 10_000, since);
      await new Promise((r) => setTimeout(r, 300));
      const sent = fleet.messages.filter((m) => m.topic === `mbox/${ID}/telemetry` && m.at >= since);
      expect(sent.map((m) => m.body.seq)).toEqual([49]);
      expect(link.telemetryPending).toBe(false);
    } finally {
      await link.stop();
    }
  });
});
