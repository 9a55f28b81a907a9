// FleetBus: the fleet's own MQTT connection, the same whether the broker is embedded aedes or an
// external mosquitto. MQTT 3.1.1, client id = FLEET_SERVICE_IDENTITY (= its certificate CN), and a
// persistent session (clean: false) so QoS 1 messages from boxes wait in the broker while the fleet
// reconnects. It never throws on what a box sends: unparsable payloads are counted and dropped.
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { mayPublish } from '../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, parseDeviceTopic, topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { FleetBus } from '../types.ts';

export type FleetBoundKind = 'status' | 'telemetry' | 'config/reported' | 'commands/res' | 'update/status';
type Pending = { reject(err: Error): void };
type Handler = (deviceId: string, kind: FleetBoundKind, payload: unknown) => void;

export interface FleetBusOptions {
  url: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  log: Logger;
  /** How long connectFleetBus waits for the first CONNACK + SUBACK (default 10 s). */
  initialTimeoutMs?: number;
}

export interface FleetBusStats {
  /** Device messages handed to the handlers. */
  delivered: number;
  /** Payloads that were not JSON. */
  invalid: number;
  /** Topics outside the device tree or not fleet-bound; empty payloads (a cleared retained topic). */
  ignored: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Connections established after the first one. */
  reconnects: number;
}

export type ConnectedFleetBus = FleetBus & { stats(): FleetBusStats };

const FLEET_BOUND: ReadonlySet<string> = new Set<FleetBoundKind>(['status', 'telemetry', 'config/reported', 'commands/res', 'update/status']);
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
// Messages that arrive before the first handler is registered (a persistent session's queue is
// flushed right after CONNACK, before connectFleetBus has even resolved) wait here.
const EARLY_BUFFER_MAX = 50_000;
/**
 * The fleet's parts register their handlers one after another while it starts, and the broker
 * hands over queued and retained messages at once: for this long after the first handler, every
 * message is also kept so a handler registered later still sees what arrived before it.
 */
const STARTUP_REPLAY_MS = 15_000;

export function connectFleetBus(opts: FleetBusOptions): Promise<ConnectedFleetBus> {
  const { url, log } = opts;
  const options: IClientOptions = {
    protocolVersion: 4,
    clientId: FLEET_SERVICE_IDENTITY,
    clean: false,
    ca: opts.caPem,
    cert: opts.certPem,
    key: opts.keyPem,
    rejectUnauthorized: true,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: BACKOFF_BASE_MS,
    // Keep trying after a refused CONNACK too (e.g. a broker restarting with its ACL not loaded yet).
    reconnectOnConnackError: true,
    // We subscribe on every CONNACK ourselves (see below), so mqtt.js need not remember topics.
    resubscribe: false,
  };
  const client: MqttClient = connect(url, options);

  const handlers: Handler[] = [];
  let early: Array<[string, FleetBoundKind, unknown]> | undefined = [];
  const stats: FleetBusStats = { delivered: 0, invalid: 0, ignored: 0, handlerErrors: 0, reconnects: 0 };
  let everConnected = false;
  let attempts = 0;
  let outageLogged = false;
  let lastError: Error | undefined;
  let closed = false;
  const pending = new Set<Pending>();

  const dispatchTo = (handler: Handler, deviceId: string, kind: FleetBoundKind, payload: unknown): void => {
    try {
      const result: unknown = handler(deviceId, kind, payload);
      if (result instanceof Promise) {
        result.catch((err: unknown) => {
          stats.handlerErrors++;
          log.warn({ err, deviceId, kind }, 'device message handler failed');
        });
      }
    } catch (err) {
      stats.handlerErrors++;
      log.warn({ err, deviceId, kind }, 'device message handler failed');
    }
  };
  const dispatch = (deviceId: string, kind: FleetBoundKind, payload: unknown): void => {
    for (const handler of handlers) dispatchTo(handler, deviceId, kind, payload);
    stats.delivered++;
  };

  client.on('message', (topic, payload) => {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || !FLEET_BOUND.has(parsed.kind) || payload.length === 0) {
      stats.ignored++;
      log.debug({ topic, bytes: payload.length }, 'ignored MQTT message');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch {
      stats.invalid++;
      log.debug({ topic, bytes: payload.length }, 'dropped non-JSON device message');
      return;
    }
    const kind = parsed.kind as FleetBoundKind;
    if (early) {
      if (early.length < EARLY_BUFFER_MAX) early.push([parsed.deviceId, kind, value]);
      else if (handlers.length === 0) stats.ignored++;
    }
    if (handlers.length > 0) dispatch(parsed.deviceId, kind, value);
  });

  // Exponential backoff: mqtt.js re-reads options.reconnectPeriod each time it schedules a retry,
  // and 'reconnect' fires at the start of every attempt.
  client.on('reconnect', () => {
    attempts++;
    const next = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts, 10));
    client.options.reconnectPeriod = Math.round(next * (0.8 + Math.random() * 0.4));
  });
  client.on('offline', () => {
    if (everConnected && !outageLogged) {
      outageLogged = true;
      log.warn({ url }, 'fleet bus lost the MQTT broker; reconnecting');
    }
  });
  client.on('error', (err) => {
    lastError = err;
    if (everConnected) log[outageLogged ? 'debug' : 'warn']({ url, err: err.message }, 'fleet bus MQTT error');
  });

  return new Promise<ConnectedFleetBus>((resolve, reject) => {
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(new Error(`fleet bus: cannot connect to MQTT broker ${url}: ${reason}`));
    };
    const timer = setTimeout(
      () => fail(`no connection within ${(opts.initialTimeoutMs ?? 10_000) / 1000} s (${lastError?.message ?? 'no answer'})`),
      opts.initialTimeoutMs ?? 10_000,
    );
    // A refused CONNACK before we ever connected is a configuration error: say so at once.
    const onInitialError = (err: Error & { code?: number }): void => {
      if (!everConnected && typeof err.code === 'number' && err.message.startsWith('Connection refused')) fail(err.message);
    };
    client.on('error', onInitialError);

    client.on('connect', (connack) => {
      attempts = 0;
      client.options.reconnectPeriod = BACKOFF_BASE_MS;
      if (everConnected) {
        stats.reconnects++;
        outageLogged = false;
        log.info({ url, sessionPresent: connack.sessionPresent }, 'fleet bus reconnected');
      }
      const subs = Object.fromEntries(topics.fleetSubscriptions.map((t) => [t, { qos: 1 as const }]));
      client.subscribe(subs, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (err || refused.length > 0) {
          const reason = err ? err.message : `subscription refused for ${refused.join(', ')}`;
          if (!everConnected) fail(reason);
          else log.error({ url, reason }, 'fleet bus could not subscribe');
          return;
        }
        if (everConnected || settled) return;
        everConnected = true;
        settled = true;
        clearTimeout(timer);
        client.off('error', onInitialError);
        log.info({ url }, 'fleet bus connected');
        resolve(bus);
      });
    });

    const bus: ConnectedFleetBus = {
      async publish(topic, payload, publishOpts) {
        if (!mayPublish(FLEET_SERVICE_IDENTITY, topic)) throw new Error(`fleet bus: refusing to publish outside the mbox/ tree: ${JSON.stringify(topic)}`);
        if (closed) throw new Error('fleet bus: closed');
        // mqtt.js never settles a QoS 1 publish that is still unacknowledged when the client ends;
        // close() fails those instead of leaving their callers waiting forever.
        await new Promise<void>((resolve, reject) => {
          const settle: Pending = { reject };
          pending.add(settle);
          client.publish(topic, JSON.stringify(payload), { qos: publishOpts?.qos ?? 1, retain: publishOpts?.retain ?? false }, (err) => {
            pending.delete(settle);
            if (err) reject(err);
            else resolve();
          });
        });
      },
      onDeviceMessage(handler) {
        if (handlers.length === 0) setTimeout(() => (early = undefined), STARTUP_REPLAY_MS).unref();
        handlers.push(handler);
        for (const [id, kind, value] of early ?? []) dispatchTo(handler, id, kind, value);
      },
      get connected() {
        return client.connected;
      },
      async close() {
        // A graceful end waits for unacknowledged QoS 1 messages, which never drain without a
        // broker: force it then. Those messages are not lost from the design's point of view —
        // the fleet republishes desired state when it starts.
        closed = true;
        await client.endAsync(!client.connected);
        for (const p of pending) p.reject(new Error(`fleet bus: closed before the broker acknowledged the message`));
        pending.clear();
      },
      stats: () => ({ ...stats }),
    };
  });
}
