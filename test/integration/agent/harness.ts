// A fleet stand-in for the box agent's tests: a throwaway CA (openssl), an aedes broker over mutual
// TLS that takes the identity from the client certificate's CN and applies the shared ACL, a client
// acting as the fleet service that records every message, and a box started with an identity
// written where enrolment would have left it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { startAppliance, type RunningAppliance } from '../../../appliance/appliance.ts';
import type { AgentOptions } from '../../../appliance/agent/agent.ts';
import { ApplianceConfigSchema } from '../../../shared/config/appliance.ts';
import { loadConfig } from '../../../shared/config/load.ts';
import { FLEET_SERVICE_IDENTITY, mayAccess } from '../../../shared/fleet/topics.ts';
import { createLogger } from '../../../shared/log.ts';
import { freePort, LOOPBACK, waitUntil } from '../../helpers/ports.ts';

export interface Pem {
  keyPem: string;
  certPem: string;
}

export interface AgentPki {
  caPem: string;
  server: Pem;
  fleet: Pem;
  /** The device's certificate (the same one each call), or a new one with `fresh` (a renewal). */
  device(id: string, fresh?: boolean): Pem;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** EC P-256 (fast to make); every leaf signed by one CA, valid for two days. */
export function createAgentPki(): AgentPki {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-agent-pki-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-sha256', '-days', '2', '-key', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=agent test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 0;
  const leaf = (cn: string, ext: string): Pem => {
    const name = `leaf${++serial}`;
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
    openssl(['req', '-new', '-sha256', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
    openssl(['x509', '-req', '-sha256', '-days', '2', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(1000 + serial), '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
    return { keyPem: readFileSync(join(dir, `${name}.key`), 'utf8'), certPem: readFileSync(join(dir, `${name}.crt`), 'utf8') };
  };
  const devices = new Map<string, Pem>();
  return {
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    server: leaf('localhost', 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost'),
    fleet: leaf(FLEET_SERVICE_IDENTITY, 'extendedKeyUsage=clientAuth'),
    device(id, fresh = false) {
      let d = devices.get(id);
      if (!d || fresh) devices.set(id, (d = leaf(id, 'extendedKeyUsage=clientAuth')));
      return d;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TestBroker {
  port: number;
  url: string;
  /** Identities refused at CONNACK with "not authorized". */
  revoked: Set<string>;
  /** Closes every client connection without a DISCONNECT (as a crash would). */
  kick(clientId: string): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** An aedes broker on one port that can be stopped and started again (a fleet restart). */
export async function createBroker(pki: AgentPki): Promise<TestBroker> {
  const port = await freePort();
  let server: Server | undefined;
  let broker: Aedes | undefined;
  const revoked = new Set<string>();
  const cnOf = (conn: unknown): string => String((conn as TLSSocket).getPeerCertificate?.()?.subject?.CN ?? '');
  return {
    port,
    url: `mqtts://${LOOPBACK}:${port}`,
    revoked,
    kick(clientId) {
      for (const c of Object.values((broker as unknown as { clients: Record<string, { id: string; conn: { destroy(): void } }> }).clients ?? {})) {
        if (c.id === clientId) c.conn.destroy();
      }
    },
    async start() {
      broker = await Aedes.createBroker({
        authenticate: (client, _u, _p, done) => {
          const cn = cnOf(client.conn);
          if (cn !== client.id || revoked.has(cn)) return done(Object.assign(new Error('not authorized'), { returnCode: 5 }), false);
          done(null, true);
        },
        authorizePublish: (client, packet, done) => done(client && mayAccess(cnOf(client.conn), packet.topic) ? null : new Error('denied')),
        authorizeSubscribe: (client, sub, done) => done(mayAccess(cnOf(client.conn), sub.topic) ? null : new Error('denied'), sub),
      });
      const b = broker;
      server = createServer({ key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: true }, (s) => b.handle(s));
      await new Promise<void>((resolve, reject) => server!.once('error', reject).listen(port, LOOPBACK, () => resolve()));
    },
    async stop() {
      const s = server;
      const b = broker;
      server = undefined;
      broker = undefined;
      if (!s || !b) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      await new Promise<void>((resolve) => b.close(() => resolve()));
      for (const c of Object.values((b as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients ?? {})) c.conn.destroy();
      await closed;
    },
  };
}

export interface Received {
  topic: string;
  body: Record<string, unknown>;
  retain: boolean;
  at: number;
}

/** The fleet side: a recording client that can wait for a message matching a predicate. */
export interface FleetSide {
  client: MqttClient;
  messages: Received[];
  waitFor(topic: string, match?: (b: Record<string, unknown>) => boolean, timeoutMs?: number, after?: number): Promise<Received>;
  publish(topic: string, body: object, retain?: boolean): Promise<void>;
  command(deviceId: string, name: string, args?: Record<string, unknown>, expiresInMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

let commandSeq = 0;

export async function connectFleet(broker: TestBroker, pki: AgentPki): Promise<FleetSide> {
  const client = await mqtt.connectAsync(broker.url, {
    protocolVersion: 4,
    clientId: FLEET_SERVICE_IDENTITY,
    key: pki.fleet.keyPem,
    cert: pki.fleet.certPem,
    ca: pki.caPem,
    reconnectPeriod: 200,
  });
  const messages: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    if (payload.length === 0) return;
    messages.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown>, retain: packet.retain, at: Date.now() });
  });
  client.on('connect', () => void client.subscribe('mbox/#', { qos: 1 }));
  await client.subscribeAsync('mbox/#', { qos: 1 });
  const side: FleetSide = {
    client,
    messages,
    async waitFor(topic, match = () => true, timeoutMs = 15_000, after = 0) {
      let found: Received | undefined;
      await waitUntil(async () => Boolean((found = messages.find((m) => m.topic === topic && m.at >= after && match(m.body)))), timeoutMs, `a message on ${topic}`);
      return found!;
    },
    async publish(topic, body, retain = false) {
      await client.publishAsync(topic, JSON.stringify(body), { qos: 1, retain });
    },
    async command(deviceId, name, args = {}, expiresInMs = 60_000) {
      const id = `cmd-${Date.now()}-${++commandSeq}`;
      const now = Date.now();
      await side.publish(`mbox/${deviceId}/commands/req`, { id, name, args, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + expiresInMs).toISOString() });
      return (await side.waitFor(`mbox/${deviceId}/commands/res`, (b) => b.id === id, 30_000)).body;
    },
    close: () => client.endAsync(true),
  };
  return side;
}

/** Writes the files enrolment leaves in <dataDir>/agent (identity.ts), so the box starts enrolled. */
export function writeIdentity(dataDir: string, pki: AgentPki, deviceId: string, mqttUrl: string): void {
  const dir = join(dataDir, 'agent');
  mkdirSync(dir, { recursive: true });
  const d = pki.device(deviceId);
  writeFileSync(join(dir, 'device.key'), d.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'device.crt'), d.certPem);
  writeFileSync(join(dir, 'ca.crt'), pki.caPem);
  const meta = { deviceId, group: 'test', labels: { site: 'lab' }, fleetUrl: 'https://127.0.0.1:9', mqttUrl, enrolledAt: new Date().toISOString() };
  writeFileSync(join(dir, 'identity.json'), JSON.stringify(meta));
}

export const AGENT_TEST_OPTIONS: AgentOptions = { linkBackoff: { minMs: 200, maxMs: 1000 }, refusedRetryMs: 1500 };

/** A box in this process with a fleet configured; logs go to its ring buffer only. */
export async function startFleetBox(dataDir: string, flags: string[] = []): Promise<RunningAppliance> {
  const config = loadConfig(ApplianceConfigSchema, {
    argv: [
      '--data-dir', dataDir, '--dicom-port', '0', '--http-port', '0', '--dicom-host', LOOPBACK,
      '--disk-min-free-bytes', '0', '--disk-high-water-percent', '100',
      '--fleet-url', 'https://127.0.0.1:9', '--telemetry-interval-ms', '1000', '--log-level', 'info',
      ...flags,
    ],
  });
  const log = createLogger(config.logLevel, 'box', { destination: { write: () => undefined } });
  return startAppliance(config, log, { agent: AGENT_TEST_OPTIONS });
}

export async function getJson<T = Record<string, unknown>>(httpPort: number, path: string): Promise<T> {
  const res = await fetch(`http://${LOOPBACK}:${httpPort}${path}`);
  return (await res.json()) as T;
}
