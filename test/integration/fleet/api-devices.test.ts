// The fleet API and device service over real MQTT and real HTTP: a plain aedes broker on loopback,
// the fleet's connection as an mqtt.js client, and scripted "devices" as more mqtt.js clients.
// (The TLS broker, ACL and the production FleetBus have their own tests; this one is about what the
// devices say reaching the API and what the API sends reaching the devices.)
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import Fastify, { type FastifyInstance } from 'fastify';
import { connect, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAuditLog } from '../../../fleet/api/audit.ts';
import { fleetApi } from '../../../fleet/api/plugin.ts';
import { DeviceRegistry } from '../../../fleet/devices/registry.ts';
import { DeviceService } from '../../../fleet/devices/service.ts';
import { TokenStore } from '../../../fleet/enrol/tokens.ts';
import type { FleetBus } from '../../../fleet/types.ts';
import type { CommandRecord, DeviceDetail } from '../../../shared/fleet/api.ts';
import type { CommandRequest, DesiredConfig } from '../../../shared/fleet/messages.ts';
import { FLEET_SERVICE_IDENTITY, parseDeviceTopic, topics } from '../../../shared/fleet/topics.ts';
import { createLogger } from '../../../shared/log.ts';
import { freePort, waitUntil } from '../../helpers/ports.ts';
import { fleetConfig, identity, telemetry } from '../../unit/fleet/devices/fixtures.ts';

const ADMIN = 'integration-admin-token-000000';
const ID = 'mb-int00001';
const log = createLogger('silent');
let dir: string;
let broker: Aedes;
let mqttServer: Server;
const sockets = new Set<Socket>();
let mqttUrl: string;
let fleetClient: MqttClient;
let registry: DeviceRegistry;
let devices: DeviceService;
let app: FastifyInstance;
let base: string;
const clients: MqttClient[] = [];

function mqttClient(clientId: string, opts: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
  const c = connect(mqttUrl, { clientId, protocolVersion: 4, reconnectPeriod: 0, ...opts });
  clients.push(c);
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

/** The fleet's side of MQTT, like fleet/broker/bus.ts but over plain TCP. */
function busOver(client: MqttClient): FleetBus {
  return {
    get connected() {
      return client.connected;
    },
    async publish(topic, payload, opts) {
      await client.publishAsync(topic, JSON.stringify(payload), { qos: opts?.qos ?? 0, retain: opts?.retain ?? false });
    },
    onDeviceMessage(handler) {
      client.on('message', (topic, buf) => {
        const t = parseDeviceTopic(topic);
        if (!t || buf.length === 0 || t.kind === 'config/desired' || t.kind === 'commands/req' || t.kind === 'update/offer') return;
        let payload: unknown;
        try {
          payload = JSON.parse(buf.toString('utf8'));
        } catch {
          return;
        }
        handler(t.deviceId, t.kind, payload);
      });
    },
    async close() {
      await client.endAsync();
    },
  };
}

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-fleet-int-'));
  broker = await Aedes.createBroker();
  mqttServer = createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    broker.handle(sock);
  });
  const port = await freePort();
  await new Promise<void>((r) => mqttServer.listen(port, '127.0.0.1', r));
  mqttUrl = `mqtt://127.0.0.1:${port}`;

  fleetClient = await mqttClient(FLEET_SERVICE_IDENTITY);
  await fleetClient.subscribeAsync(topics.fleetSubscriptions.map((t) => t), { qos: 1 });
  registry = await DeviceRegistry.open(join(dir, 'devices'), log);
  await registry.register(identity(ID));
  const config = fleetConfig({ dataDir: dir, adminToken: ADMIN, commandTimeoutMs: 5000 });
  const audit = new FileAuditLog(dir);
  devices = new DeviceService({ registry, bus: busOver(fleetClient), audit, config, log });
  await devices.start();
  app = Fastify({ logger: false });
  await app.register(fleetApi, { registry, devices, tokens: new TokenStore(join(dir, 'tokens')), audit, caPin: 'AAAAAAAAAAAAAAAAAAAAAA', config, log });
  const httpPort = await freePort();
  await app.listen({ port: httpPort, host: '127.0.0.1' });
  base = `http://127.0.0.1:${httpPort}`;
});

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => undefined);
  await app?.close();
  await devices?.stop();
  await registry?.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => (mqttServer ? mqttServer.close(() => r()) : r()));
  await new Promise<void>((r) => (broker ? broker.close(() => r()) : r()));
  await rm(dir, { recursive: true, force: true });
});

describe('fleet API with devices over MQTT', () => {
  it('status and telemetry from a device show in GET /api/devices/:id; its last will marks it offline', async () => {
    const box = await mqttClient(ID, { will: { topic: topics.status(ID), payload: Buffer.from(JSON.stringify({ online: false, at: new Date().toISOString(), reason: 'connection-lost' })), qos: 1, retain: true } });
    await box.publishAsync(topics.status(ID), JSON.stringify({ online: true, at: new Date().toISOString(), reason: 'connected', firmware: '0.3.0' }), { qos: 1, retain: true });
    await box.publishAsync(topics.telemetry(ID), JSON.stringify(telemetry({ seq: 7, disk: 55.5, queue: 3 })), { qos: 0 });
    await waitUntil(async () => (await api<DeviceDetail>('GET', `/api/devices/${ID}`)).body.telemetry?.seq === 7, 5000, 'telemetry in the API');
    const d = (await api<DeviceDetail>('GET', `/api/devices/${ID}`)).body;
    expect(d).toMatchObject({ online: true, health: 'ok', telemetry: { system: { diskUsedPercent: 55.5 } } });
    expect(d.history.at(-1)).toMatchObject({ disk: 55.5, queue: 3 });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/mbox_fleet_telemetry_latency_seconds_count 1/);
    expect(metrics).toMatch(/mbox_fleet_messages_total\{kind="telemetry"\} 1/);
    // Cut the connection without DISCONNECT: the broker publishes the will.
    box.stream.destroy();
    await waitUntil(async () => (await api<DeviceDetail>('GET', `/api/devices/${ID}`)).body.online === false, 5000, 'offline after the will');
    expect((await api<DeviceDetail>('GET', `/api/devices/${ID}`)).body.events.slice(0, 2).map((e) => e.event)).toEqual(['offline', 'online']);
  });

  it('a command goes to the device and its answer comes back (wait=true)', async () => {
    const box = await mqttClient(`${ID}`, { clean: true });
    await box.subscribeAsync(topics.commandRequest(ID), { qos: 1 });
    box.on('message', (topic, buf) => {
      if (topic !== topics.commandRequest(ID)) return;
      const req = JSON.parse(buf.toString()) as CommandRequest;
      void box.publishAsync(topics.commandResponse(ID), JSON.stringify({ id: req.id, status: 'ok', result: { pong: req.args }, at: new Date().toISOString() }), { qos: 1 });
    });
    const res = await api<CommandRecord>('POST', `/api/devices/${ID}/commands`, { name: 'ping', args: { n: 1 }, wait: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok', result: { pong: { n: 1 } }, issuedBy: 'bootstrap-admin', answeredAt: expect.any(String) });
    await box.endAsync();
  });

  it('a command nobody answers times out', async () => {
    const res = await api<CommandRecord>('POST', `/api/devices/${ID}/commands`, { name: 'restart', timeoutMs: 300 });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('pending');
    await waitUntil(async () => (await api<CommandRecord>('GET', `/api/commands/${res.body.id}`)).body.status === 'timed-out', 5000, 'timed-out');
  });

  it('a desired config is published retained: a device connecting later gets it', async () => {
    const put = await api<DesiredConfig>('PUT', `/api/devices/${ID}/config`, { config: { logLevel: 'debug', telemetryIntervalMs: 10_000 } });
    expect(put.status).toBe(200);
    const late = await mqttClient('late-reader');
    const got = new Promise<{ retain: boolean; body: DesiredConfig }>((resolve) => late.on('message', (_t, buf, packet) => resolve({ retain: packet.retain, body: JSON.parse(buf.toString()) as DesiredConfig })));
    await late.subscribeAsync(topics.desired(ID), { qos: 1 });
    const msg = await got;
    expect(msg.retain).toBe(true);
    expect(msg.body).toEqual(put.body);
    const invalid = await api<{ errors: string[] }>('PUT', `/api/devices/${ID}/config`, { config: { telemetryIntervalMs: 5 } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors[0]).toMatch(/^\/telemetryIntervalMs/);
  });

  it('serves the OpenAPI document listing the routes', async () => {
    const res = await fetch(`${base}/api/openapi.json`);
    expect(res.status).toBe(200);
    const spec = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths['/api/devices/{id}/commands'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(spec.paths['/api/devices/{id}/config'] ?? {}).sort()).toEqual(['get', 'put']);
    for (const p of ['/api/whoami', '/api/overview', '/api/alerts', '/api/stats', '/api/tokens/enrolment', '/api/tokens/api/{id}', '/api/audit', '/metrics']) expect(spec.paths).toHaveProperty([p]);
    expect((await fetch(`${base}/api/devices`)).status).toBe(401);
  });
});
