// Simulated boxes for the dashboard test, joined by real means: an enrolment token minted through
// the fleet API, the box side's own enrolment (appliance/agent/enrol.ts: key made here, CSR,
// pinned CA), then an MQTT client over mutual TLS with the issued certificate, talking the
// contract's topics. What it reports (disk, queue, daily figures) is chosen by the test, so the
// dashboard's alerts, charts and stats can be checked against known numbers.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { ensureIdentity } from '../../../appliance/agent/enrol.ts';
import type { AgentIdentity } from '../../../appliance/agent/identity.ts';
import { topics } from '../../../shared/fleet/topics.ts';
import type { CommandRequest, CommandResponse, DailyFigures, DesiredConfig, ReportedConfig, StatusMessage, Telemetry } from '../../../shared/fleet/messages.ts';
import type { Logger } from '../../../shared/log.ts';

export const SIM_FIRMWARE = '0.9.0-sim';

/** A JSON call to the fleet API over HTTPS, trusting only the fleet CA. */
export function apiCall<T>(baseUrl: string, caPem: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      `${baseUrl}${path}`,
      {
        method,
        ca: caPem,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T });
          } catch {
            reject(new Error(`${method} ${path}: ${res.statusCode} with a non-JSON body: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface SimFigures {
  cpu: number;
  memPercent: number;
  diskPercent: number;
  queue: number;
  oldestQueuedAgeS: number | null;
  daily: DailyFigures[];
}

export function dailyFigures(day: string, modality: string, studies: number, instances: number): DailyFigures {
  const received = instances * 520_000;
  return {
    day,
    modality,
    studies,
    instances,
    bytesReceived: received,
    bytesSent: Math.round(received * 0.42),
    bytesFiltered: Math.round(received * 0.05),
    uploadLatencyMs: { count: instances, sum: instances * (modality === 'MR' ? 2400 : 1100), max: modality === 'MR' ? 9000 : 4000 },
  };
}

export class SimBox {
  readonly identity: AgentIdentity;
  readonly client: MqttClient;
  readonly commands: CommandRequest[] = [];
  readonly desired: DesiredConfig[] = [];
  /** Decides the report for a desired config; null leaves it unanswered (pending). */
  onDesired: (d: DesiredConfig) => Pick<ReportedConfig, 'status' | 'error'> | null = () => null;
  private seq = 0;
  private effective: Record<string, unknown> = { logLevel: 'info', aeTitle: 'MBOX' };

  private constructor(identity: AgentIdentity, client: MqttClient) {
    this.identity = identity;
    this.client = client;
  }

  get id(): string {
    return this.identity.deviceId;
  }

  static async connect(identity: AgentIdentity): Promise<SimBox> {
    const id = identity.deviceId;
    const will: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'connection-lost', firmware: SIM_FIRMWARE };
    const client = await mqtt.connectAsync(identity.mqttUrl, {
      protocolVersion: 4,
      clientId: id,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      key: identity.keyPem,
      cert: identity.certPem,
      ca: identity.caPem,
      rejectUnauthorized: true,
      will: { topic: topics.status(id), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    });
    const box = new SimBox(identity, client);
    client.on('message', (topic, payload) => void box.onMessage(topic, payload));
    await client.subscribeAsync([topics.commandRequest(id), topics.desired(id)], { qos: 1 });
    await box.publish(topics.status(id), { online: true, at: new Date().toISOString(), reason: 'connected', firmware: SIM_FIRMWARE } satisfies StatusMessage, true);
    return box;
  }

  private async publish(topic: string, body: unknown, retain = false): Promise<void> {
    await this.client.publishAsync(topic, JSON.stringify(body), { qos: 1, retain });
  }

  /** One telemetry message stamped `at` (older stamps build a history quickly). */
  async telemetry(f: SimFigures, at = new Date()): Promise<void> {
    const memTotal = 4_000_000_000;
    const diskTotal = 200_000_000_000;
    const t: Telemetry = {
      at: at.toISOString(),
      seq: ++this.seq,
      firmware: SIM_FIRMWARE,
      uptimeS: 3600 + this.seq * 30,
      system: {
        cpuLoadPercent: f.cpu,
        memUsedBytes: Math.round((memTotal * f.memPercent) / 100),
        memTotalBytes: memTotal,
        diskUsedBytes: Math.round((diskTotal * f.diskPercent) / 100),
        diskTotalBytes: diskTotal,
        diskUsedPercent: f.diskPercent,
        osUptimeS: 86_400,
        netRxBytesPerSec: 120_000,
        netTxBytesPerSec: 2_400_000,
        cpuTempC: null,
      },
      pipeline: {
        byState: { committed: 1200, queued: f.queue, held: 1 },
        received: 1200 + f.queue + 1,
        committed: 1200,
        held: 1,
        deadLetter: 0,
        queueDepth: f.queue,
        oldestQueuedAgeS: f.oldestQueuedAgeS,
        bytesOut: 1_500_000_000,
        lastError: null,
        diskAccepting: true,
      },
      daily: f.daily,
    };
    await this.publish(topics.telemetry(this.id), t);
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const msg: unknown = JSON.parse(payload.toString('utf8'));
    if (topic === topics.commandRequest(this.id)) {
      const req = msg as CommandRequest;
      this.commands.push(req);
      const at = new Date().toISOString();
      const res: CommandResponse =
        req.name === 'ping'
          ? { id: req.id, status: 'ok', result: { pong: true, firmware: SIM_FIRMWARE }, at }
          : req.name === 'fetch-logs'
            ? { id: req.id, status: 'ok', result: { lines: ['{"level":30,"msg":"sim box started"}', '{"level":40,"msg":"<b>not markup</b>"}'] }, at }
            : { id: req.id, status: 'ok', result: {}, at };
      await this.publish(topics.commandResponse(this.id), res);
    } else if (topic === topics.desired(this.id)) {
      const d = msg as DesiredConfig;
      this.desired.push(d);
      const verdict = this.onDesired(d);
      if (verdict) await this.report(d, verdict);
    }
  }

  /** Reports on a desired config the way a box does (retained). */
  async report(d: DesiredConfig, verdict: Pick<ReportedConfig, 'status' | 'error'>): Promise<void> {
    if (verdict.status === 'applied') this.effective = { ...this.effective, ...d.config };
    const rep: ReportedConfig = {
      version: d.version,
      status: verdict.status,
      ...(verdict.error ? { error: verdict.error } : {}),
      steps: verdict.status === 'applied' ? Object.keys(d.config).map((k) => `set ${k}`) : [],
      at: new Date().toISOString(),
      firmware: SIM_FIRMWARE,
      effective: this.effective,
    };
    await this.publish(topics.reported(this.id), rep, true);
  }

  async close(): Promise<void> {
    if (!this.client.connected) {
      // Revoked boxes are cut off by the broker: nothing left to say goodbye on.
      this.client.end(true);
      return;
    }
    await this.publish(topics.status(this.id), { online: false, at: new Date().toISOString(), reason: 'clean-stop', firmware: SIM_FIRMWARE } satisfies StatusMessage, true).catch(() => undefined);
    await this.client.endAsync().catch(() => this.client.end(true));
  }
}

/** Mints an enrolment token through the API and enrols a new simulated box with it. */
export async function enrolSimBox(fleet: { baseUrl: string; caPem: string; adminToken: string }, group: string, clinic: string, log: Logger): Promise<{ box: SimBox; dir: string }> {
  const minted = await apiCall<{ token: string }>(fleet.baseUrl, fleet.caPem, fleet.adminToken, 'POST', '/api/tokens/enrolment', { group, expires: '1h', labels: { clinic } });
  if (minted.status !== 200 && minted.status !== 201) throw new Error(`token mint failed: ${minted.status} ${JSON.stringify(minted.body)}`);
  const dir = mkdtempSync(join(tmpdir(), 'mbox-simbox-'));
  try {
    const identity = await ensureIdentity({ dataDir: dir, fleetUrl: fleet.baseUrl, enrolToken: minted.body.token, firmware: SIM_FIRMWARE, log, onStatus: () => undefined, retry: { minMs: 100, maxMs: 500 } });
    if (!identity) throw new Error('enrolment of the simulated box failed');
    return { box: await SimBox.connect(identity), dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
