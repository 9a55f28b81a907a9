// FleetBus: the fleet's own MQTT connection, the same whether the broker is embedded aedes or an
// external mosquitto. MQTT 3.1.1, client id = FLEET_SERVICE_IDENTITY (= its certificate CN), and a
// persistent session (clean: false) so QoS 1 messages from boxes wait in the broker while the fleet
// reconnects. With the embedded broker the fleet uses ./local-bus.ts instead (no TLS to itself).
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { mayPublish } from '../../shared/fleet/acl.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { FleetBus } from '../types.ts';
import { DeviceMessageRouter, type FleetBusStats } from './router.ts';

export type { FleetBoundKind, FleetBusStats } from './router.ts';

export interface FleetBusOptions {
  url: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  log: Logger;
  /** How long connectFleetBus waits for the first CONNACK + SUBACK (default 10 s). */
  initialTimeoutMs?: number;
}

export type ConnectedFleetBus = FleetBus & { stats(): FleetBusStats };

type Pending = { reject(err: Error): void };

const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

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

  const router = new DeviceMessageRouter(log);
  const stats = router.stats;
  let everConnected = false;
  let attempts = 0;
  let outageLogged = false;
  let lastError: Error | undefined;
  let closed = false;
  const pending = new Set<Pending>();

  client.on('message', (topic, payload) => router.receive(topic, payload));

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
        router.addHandler(handler);
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
