// One simulated box on the wire, behaving like appliance/agent/link.ts: MQTT 3.1.1 over mutual TLS
// with its own certificate, client id = device id, a persistent session, a retained offline
// last-will, a retained online status after every CONNACK, QoS 1 subscriptions to its desired
// config and commands, and QoS 0 telemetry on a fixed interval.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { StatusMessage } from '../../shared/fleet/messages.ts';
import { topics } from '../../shared/fleet/topics.ts';
import type { SimBox } from './identities.ts';
import { initialFigures, nextTelemetry, type BoxFigures } from './telemetry.ts';

export const SIM_FIRMWARE = '0.1.0-sim';

export type BoxState = 'idle' | 'connecting' | 'up' | 'down';

export interface BoxEvents {
  /** CONNACK, status published and subscriptions granted; ms since connect() was called. */
  ready(box: BoxClient, connectMs: number, readyMs: number): void;
  /** A connection attempt that never got to ready. */
  failed(box: BoxClient, reason: string): void;
  /** A ready connection that closed. */
  dropped(box: BoxClient, reason: string): void;
  published(box: BoxClient, bytes: number): void;
}

export interface BoxOptions {
  url: string;
  caPem: string;
  keepaliveS: number;
  intervalMs: number;
  events: BoxEvents;
}

export class BoxClient {
  readonly box: SimBox;
  readonly index: number;
  state: BoxState = 'idle';
  private readonly opts: BoxOptions;
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  readonly figures: BoxFigures;

  constructor(box: SimBox, index: number, opts: BoxOptions) {
    this.box = box;
    this.index = index;
    this.opts = opts;
    this.figures = initialFigures(index);
  }

  connect(): void {
    const { box, opts } = this;
    this.state = 'connecting';
    this.lastError = undefined;
    const will: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'connection-lost', firmware: SIM_FIRMWARE };
    const options: IClientOptions = {
      protocolVersion: 4,
      clientId: box.id,
      clean: false,
      keepalive: opts.keepaliveS,
      reconnectPeriod: 0, // the simulator decides when to try again
      connectTimeout: 60_000,
      queueQoSZero: false,
      resubscribe: false,
      key: box.keyPem,
      cert: box.certPem,
      ca: opts.caPem,
      rejectUnauthorized: true,
      will: { topic: topics.status(box.id), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    };
    const started = performance.now();
    const client = mqtt.connect(opts.url, options);
    this.client = client;
    let connectMs = 0;
    client.once('connect', () => {
      connectMs = performance.now() - started;
      void this.onConnect(client, started, connectMs);
    });
    client.on('error', (err) => {
      this.lastError = err.message;
    });
    client.on('close', () => {
      if (client !== this.client) return;
      this.stopTelemetry();
      const was = this.state;
      this.state = 'down';
      this.client = undefined;
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
      const reason = this.lastError ?? 'closed';
      if (was === 'up') opts.events.dropped(this, reason);
      else if (was === 'connecting') opts.events.failed(this, reason);
    });
  }

  private async onConnect(client: MqttClient, started: number, connectMs: number): Promise<void> {
    const id = this.box.id;
    try {
      const online: StatusMessage = { online: true, at: new Date().toISOString(), reason: 'connected', firmware: SIM_FIRMWARE };
      await client.publishAsync(topics.status(id), JSON.stringify(online), { qos: 1, retain: true });
      const granted = await client.subscribeAsync({ [topics.desired(id)]: { qos: 1 }, [topics.commandRequest(id)]: { qos: 1 } });
      if (granted.some((g) => g.qos === 128)) throw new Error('subscription refused');
    } catch (err) {
      this.lastError = `after CONNACK: ${(err as Error).message}`;
      client.end(true);
      return;
    }
    if (client !== this.client) return;
    this.state = 'up';
    this.opts.events.ready(this, connectMs, performance.now() - started);
    // A random phase spreads the fleet's messages evenly over the interval.
    this.timer = setTimeout(() => {
      this.publishTelemetry();
      this.timer = setInterval(() => this.publishTelemetry(), this.opts.intervalMs);
    }, Math.random() * this.opts.intervalMs);
  }

  /** Publishes one telemetry message now; returns its seq (undefined when not up). */
  publishTelemetry(): number | undefined {
    const client = this.client;
    if (this.state !== 'up' || !client) return undefined;
    const t = nextTelemetry(this.figures, SIM_FIRMWARE);
    const payload = JSON.stringify(t);
    client.publish(topics.telemetry(this.box.id), payload, { qos: 0 }, (err) => {
      if (!err) this.opts.events.published(this, payload.length);
    });
    return t.seq;
  }

  /** Stops the periodic telemetry (a probe box publishes on its own schedule). */
  stopTelemetry(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Drops the connection without DISCONNECT. */
  destroy(): void {
    this.stopTelemetry();
    const client = this.client;
    this.client = undefined;
    this.state = 'idle';
    if (client) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end(true);
    }
  }
}
