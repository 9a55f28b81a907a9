// The fleet's embedded MQTT broker: aedes (MQTT 3.1.1) on a TLS listener that demands a client
// certificate from the fleet CA. Identity and ACL are enforced by ./hooks.ts.
//
// Persistence is aedes' default, in memory: retained messages (status, desired, reported) and QoS 1
// messages queued for offline persistent sessions live as long as this process. The fleet
// republishes desired config when it starts.
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import memoryPersistenceModule from 'aedes-persistence';
import { FLEET_SERVICE_IDENTITY } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { BrokerControl, DeviceDirectory } from '../types.ts';
import type { ConnectedFleetBus } from './bus.ts';
import { createBrokerHooks } from './hooks.ts';
import { attachLocalBus } from './local-bus.ts';
import { RefusalLog } from './refusals.ts';
import { withRetainedIndex } from './retained.ts';

export interface EmbeddedBrokerOptions {
  host: string;
  /** 0 picks a free port; the chosen one is returned. */
  port: number;
  tls: { certPem: string; keyPem: string; caPem: string };
  directory: Pick<DeviceDirectory, 'isRevoked' | 'isCurrentSerial'>;
  log: Logger;
}

export interface BrokerStats {
  /** Connected devices (the fleet service's own connection not counted). */
  connected: number;
  /** Refusals by kind: `connect:<reason>`, `publish`, `subscribe`, `tls`. */
  refusals: Record<string, number>;
}

export interface EmbeddedBroker extends BrokerControl {
  port: number;
  /** The fleet's bus on this broker, in-process (see ./local-bus.ts). */
  bus: ConnectedFleetBus;
  stats(): BrokerStats;
}

// Tuned for ~20,000 boxes heartbeating every 10 s into one process.
const AEDES_TUNING = {
  // A box that opened TLS but sends no CONNECT is dropped after this.
  connectTimeout: 10_000,
  // $SYS heartbeat; stale wills are swept every 4 beats (an O(wills) scan, so not too often).
  heartbeatInterval: 60_000,
  // One stalled subscriber (the fleet service above all) must not block delivery for everyone.
  drainTimeout: 30_000,
  // In-flight deliveries in the emitter: ~2,000 telemetry messages per second arrive at 20k boxes.
  concurrency: 1000,
} as const;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
// CommonJS whose types declare an ESM default: at run time the default import is the factory itself.
const memoryPersistence = memoryPersistenceModule as unknown as typeof memoryPersistenceModule.default;

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { log } = opts;
  const refusals = new RefusalLog(log);
  const hooks = createBrokerHooks({ directory: opts.directory, refusals, log });
  const { identityOf, ...handlers } = hooks;
  const aedes = await Aedes.createBroker({ ...AEDES_TUNING, ...handlers, persistence: withRetainedIndex(memoryPersistence()) });
  const bus = await attachLocalBus(aedes, log.child({ component: 'bus' }));

  // Live clients by verified identity, for disconnect(). A takeover (same identity reconnecting)
  // unregisters the old client before the new one is ready, so a check on delete suffices.
  const live = new Map<string, Client>();
  aedes.on('clientReady', (client) => {
    const identity = identityOf(client);
    if (identity !== undefined) live.set(identity, client);
    log.debug({ identity }, 'client connected');
  });
  aedes.on('clientDisconnect', (client) => {
    const identity = identityOf(client);
    if (identity !== undefined && live.get(identity) === client) live.delete(identity);
    log.debug({ identity }, 'client disconnected');
  });
  aedes.on('clientError', (client, err) => log.debug({ identity: identityOf(client), err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'connection error'));
  // aedes emits 'error' from its will sweeper; unhandled it would crash the process.
  (aedes as EventEmitter).on('error', (err: unknown) => log.error({ err }, 'broker error'));

  const sockets = new Set<Socket>();
  const server = createServer(
    {
      cert: opts.tls.certPem,
      key: opts.tls.keyPem,
      ca: opts.tls.caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
      noDelay: true,
    },
    (socket: TLSSocket) => {
      aedes.handle(socket);
    },
  );
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    refusals.note('tls', { reason: err.code ?? err.message, remote: socket.remoteAddress }, 'TLS handshake refused');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'broker listener error'));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  log.info({ host: opts.host, port }, 'embedded MQTT broker listening');

  const devicesConnected = (): number => live.size - (live.has(FLEET_SERVICE_IDENTITY) ? 1 : 0);
  let closing: Promise<void> | undefined;
  return {
    port,
    bus,
    disconnect(deviceId: string): void {
      const client = live.get(deviceId);
      if (!client) return;
      log.info({ deviceId }, 'dropping device connection');
      client.close();
    },
    /** Connected devices; the fleet service's own connection is not counted. */
    connectedCount: devicesConnected,
    stats: () => ({ connected: devicesConnected(), refusals: refusals.counts() }),
    close(): Promise<void> {
      closing ??= (async () => {
        await bus.close();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        // Sockets that never finished TLS or CONNECT are not aedes clients yet.
        for (const s of sockets) s.destroy();
        await stopped;
        log.info({ port }, 'embedded MQTT broker closed');
      })();
      return closing;
    },
  };
}
