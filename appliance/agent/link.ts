// The box's MQTT link to the fleet: mutual TLS with the device certificate, a persistent session
// (commands wait in it while the box is away), a retained online/offline status with a last will,
// and reconnects that back off with jitter so a fleet coming back is not stampeded by its boxes.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { topics, parseDeviceTopic, type DeviceTopicKind } from '../../shared/fleet/topics.ts';
import type { StatusMessage, Telemetry } from '../../shared/fleet/messages.ts';
import type { Logger } from '../../shared/log.ts';
import type { AgentIdentity } from './identity.ts';

export type LinkState = 'connecting' | 'connected' | 'offline' | 'refused' | 'stopped';

export interface LinkOptions {
  identity: AgentIdentity;
  firmware: string;
  log: Logger;
  /** After every (re)connect, once subscribed: publish what the fleet should see again. */
  onConnected: () => void;
  onMessage: (kind: 'config/desired' | 'commands/req', payload: unknown) => void;
  /** Set: the link also subscribes to update/offer and hands each one over (null: withdrawn). */
  onUpdateOffer?: (payload: unknown) => void;
  /** The broker refused the certificate (not authorized): revoked or unknown. */
  onRefused?: (message: string, retryAt: Date) => void;
  /** Reconnect delay: doubles from minMs up to maxMs, with jitter. */
  backoff?: { minMs: number; maxMs: number };
  /** How long to wait after a not-authorized refusal before trying again. */
  refusedRetryMs?: number;
  keepaliveS?: number;
}

const NOT_AUTHORIZED = new Set([5, 135]); // MQTT 3.1.1 return code, MQTT 5 reason code

export class FleetLink {
  private readonly opts: LinkOptions;
  private readonly log: Logger;
  private identity: AgentIdentity;
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private refused = false;
  private refusalLogged = false;
  private pendingTelemetry: Telemetry | undefined;
  state: LinkState = 'connecting';
  lastError: string | undefined;
  connectedAt: string | undefined;

  constructor(opts: LinkOptions) {
    this.opts = opts;
    this.identity = opts.identity;
    this.log = opts.log;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Whether a telemetry message is waiting for the reconnect. */
  get telemetryPending(): boolean {
    return this.pendingTelemetry !== undefined;
  }

  get deviceId(): string {
    return this.identity.deviceId;
  }

  start(): void {
    this.connect();
  }

  /** A renewed certificate: reconnect with it. */
  replaceIdentity(identity: AgentIdentity): void {
    this.identity = identity;
    if (this.state === 'stopped') return;
    this.log.info({ notAfter: identity.notAfter }, 'fleet link: reconnecting with the renewed certificate');
    // The old session ends before the new one starts: two connections with one client id at the
    // broker race each other (the old one's goodbye can unregister the new one).
    void this.dropClient().then(() => {
      if (this.state !== 'stopped' && !this.client) this.connect();
    });
  }

  /** QoS 1 publish. While offline: 'queue' keeps it for the reconnect, 'drop' skips it. */
  async publish(kind: DeviceTopicKind, message: object, opts: { retain?: boolean; whenOffline?: 'queue' | 'drop' } = {}): Promise<void> {
    const client = this.client;
    if (!client || (!this.connected && opts.whenOffline !== 'queue')) return;
    await client.publishAsync(topicOf(kind, this.identity.deviceId), JSON.stringify(message), { qos: 1, retain: opts.retain ?? false });
  }

  /** Telemetry is never queued: offline, only the latest one waits for the reconnect. */
  publishTelemetry(t: Telemetry): void {
    if (!this.connected || !this.client) {
      this.pendingTelemetry = t;
      return;
    }
    this.pendingTelemetry = undefined;
    this.client.publish(topics.telemetry(this.identity.deviceId), JSON.stringify(t), { qos: 0 }, (err) => {
      if (err) this.log.debug({ err: err.message }, 'telemetry not sent');
    });
  }

  /** Clean stop: retained offline 'clean-stop', then DISCONNECT (so the broker drops the will). */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasConnected = this.connected;
    this.state = 'stopped';
    clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    if (!client) return;
    if (wasConnected) {
      const status: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'clean-stop', firmware: this.opts.firmware };
      await withTimeout(client.publishAsync(topics.status(this.identity.deviceId), JSON.stringify(status), { qos: 1, retain: true }), 2000).catch(
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'offline status not confirmed'),
      );
      await withTimeout(client.endAsync(), 2000).catch(() => client.end(true));
    } else {
      client.end(true);
    }
    this.client = undefined;
  }

  private connect(): void {
    const id = this.identity;
    // The will's `at` is when it was registered (connect time); the fleet stamps the real loss itself.
    const will: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'connection-lost', firmware: this.opts.firmware };
    const options: IClientOptions = {
      protocolVersion: 4, // aedes speaks MQTT 3.1.1
      clientId: id.deviceId,
      clean: false,
      keepalive: this.opts.keepaliveS ?? 60,
      reconnectPeriod: 0, // reconnects are ours: growing, jittered delays
      connectTimeout: 30_000,
      queueQoSZero: false,
      resubscribe: false, // onConnect subscribes every time
      key: id.keyPem,
      cert: id.certPem,
      ca: id.caPem,
      rejectUnauthorized: true,
      will: { topic: topics.status(id.deviceId), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    };
    this.state = this.refused ? 'refused' : 'connecting';
    const client = mqtt.connect(id.mqttUrl, options);
    this.client = client;
    client.on('connect', () => void this.onConnect(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err: Error & { code?: unknown }) => {
      this.lastError = err.message;
      if (typeof err.code === 'number' && NOT_AUTHORIZED.has(err.code)) this.refused = true;
      else this.log.debug({ err: err.message }, 'fleet link error');
    });
    client.on('close', () => {
      if (client !== this.client || this.state === 'stopped') return;
      // The refusal (an 'error') and the socket's 'close' come in either order: decide next tick.
      setImmediate(() => this.scheduleReconnect(client));
    });
  }

  private async dropClient(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const old = this.client;
    this.client = undefined;
    if (!old) return;
    old.removeAllListeners('close');
    old.on('error', () => undefined);
    // A connected client leaves with DISCONNECT, so the broker drops its will: swapping the
    // certificate is not a connection loss the fleet should see.
    await withTimeout(old.endAsync(!old.connected), 2000).catch(() => old.end(true));
  }

  private scheduleReconnect(client: MqttClient): void {
    if (client !== this.client || this.state === 'stopped' || this.timer) return;
    const wasConnected = this.connected;
    let delay: number;
    if (this.refused) {
      delay = this.opts.refusedRetryMs ?? 10 * 60_000;
      this.state = 'refused';
      const retryAt = new Date(Date.now() + delay);
      const message = `the fleet refused this box's certificate (not authorized): ${this.lastError ?? ''}`.trim();
      if (!this.refusalLogged) this.log.error({ deviceId: this.identity.deviceId, retryAt }, message);
      this.refusalLogged = true;
      this.opts.onRefused?.(message, retryAt);
    } else {
      const { minMs, maxMs } = this.opts.backoff ?? { minMs: 1000, maxMs: 5 * 60_000 };
      const base = Math.min(maxMs, minMs * 2 ** Math.min(this.failures, 20));
      delay = Math.round(base / 2 + (Math.random() * base) / 2);
      this.state = 'offline';
      if (wasConnected) this.log.warn({ retryInMs: delay, err: this.lastError }, 'fleet link lost');
      else this.log.debug({ retryInMs: delay, err: this.lastError, failures: this.failures }, 'fleet link: connect failed');
    }
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (client !== this.client || this.state === 'stopped') return;
      this.refused = false;
      this.state = 'connecting';
      // The client's own stores: QoS 1 messages in flight survive the reconnect (a new client,
      // after a certificate swap, starts with new ones: mqtt.js closes a client's stores at its end).
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  }

  private async onConnect(client: MqttClient): Promise<void> {
    const id = this.identity.deviceId;
    this.failures = 0;
    this.refused = false;
    this.refusalLogged = false;
    this.lastError = undefined;
    this.state = 'connected';
    this.connectedAt = new Date().toISOString();
    this.log.info({ deviceId: id, mqttUrl: this.identity.mqttUrl }, 'fleet link up');
    try {
      const online: StatusMessage = { online: true, at: this.connectedAt, reason: 'connected', firmware: this.opts.firmware };
      await client.publishAsync(topics.status(id), JSON.stringify(online), { qos: 1, retain: true });
      const granted = await client.subscribeAsync({
        [topics.desired(id)]: { qos: 1 },
        [topics.commandRequest(id)]: { qos: 1 },
        ...(this.opts.onUpdateOffer ? { [topics.updateOffer(id)]: { qos: 1 as const } } : {}),
      });
      for (const g of granted) if (g.qos === 128) this.log.error({ topic: g.topic }, 'the fleet refused a subscription');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'fleet link: publishing status or subscribing failed');
      return;
    }
    if (client !== this.client || !this.connected) return;
    this.opts.onConnected();
    if (this.pendingTelemetry) this.publishTelemetry(this.pendingTelemetry);
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.deviceId !== this.identity.deviceId) return;
    if (parsed.kind === 'update/offer' && this.opts.onUpdateOffer) {
      // An empty retained payload withdraws the offer.
      if (payload.length === 0) return this.opts.onUpdateOffer(null);
      let offer: unknown;
      try {
        offer = JSON.parse(payload.toString('utf8'));
      } catch {
        this.log.warn({ topic, bytes: payload.length }, 'update offer is not JSON; ignored');
        return;
      }
      return this.opts.onUpdateOffer(offer);
    }
    if (parsed.kind !== 'config/desired' && parsed.kind !== 'commands/req') return;
    // An empty retained message clears the topic: nothing to do.
    if (payload.length === 0) return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      this.log.warn({ topic, bytes: payload.length }, 'fleet message is not JSON; ignored');
      return;
    }
    this.opts.onMessage(parsed.kind, body);
  }
}

function topicOf(kind: DeviceTopicKind, id: string): string {
  return `${topics.devicePrefix(id)}${kind}`;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms))),
  ]);
}
