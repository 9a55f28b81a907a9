// The fleet manager process: its CA, the enrolment endpoint, the MQTT broker (embedded aedes or an
// external one), the device service, the fleet API + dashboard, and the cloud receiver boxes
// upload to. This file only wires parts; each lives in its own folder.
import { mkdir, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import Fastify, { LogController } from 'fastify';
import type { FleetConfig } from '../shared/config/fleet.ts';
import { ConfigError } from '../shared/config/load.ts';
import type { Logger } from '../shared/log.ts';
import { FileAuditLog } from './api/audit.ts';
import { fleetApi, fleetOpenApi } from './api/plugin.ts';
import { connectFleetBus } from './broker/bus.ts';
import { startCrlFile, type CrlFile } from './broker/crl-file.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded.ts';
import { DeviceRegistry } from './devices/registry.ts';
import { DeviceService } from './devices/service.ts';
import { enrolRoutes, httpsOptions } from './enrol/routes.ts';
import { TokenStore } from './enrol/tokens.ts';
import { stowReceiver } from './ingest/stow-receiver.ts';
import { openPki } from './pki/pki.ts';
import { ReleaseStore } from './rollouts/releases.ts';
import { RolloutService } from './rollouts/service.ts';
import type { FleetBus, FleetPki } from './types.ts';
import { fleetWeb } from './web/plugin.ts';

export interface RunningFleet {
  httpPort: number;
  /** Port of the embedded broker; undefined with an external one. */
  mqttPort: number | undefined;
  /** https://host:port (http:// with tls off). */
  baseUrl: string;
  /** DICOMweb base URL boxes upload to. */
  dicomWebUrl: string;
  /** Broker URL boxes get at enrolment. */
  mqttUrl: string;
  pki: FleetPki;
  tokens: TokenStore;
  devices: DeviceService;
  /** The fleet's own MQTT connection (operators' tools and tests publish as the fleet through it). */
  bus: FleetBus;
  stop(): Promise<void>;
}

const displayHost = (host: string): string => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : isIP(host) === 6 ? `[${host}]` : host);

export async function startFleet(config: FleetConfig, log: Logger): Promise<RunningFleet> {
  if (config.brokerCrlFile && !config.broker) throw new ConfigError('brokerCrlFile is for an external broker (--broker mqtts://…); the embedded broker checks the registry itself');
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const pki = await openPki(resolve(dataDir, 'ca'), log.child({ component: 'pki' }));
  const hosts = [...new Set([config.httpHost, ...(config.mqttHost ? [config.mqttHost] : []), ...config.publicHosts])].filter((h) => h !== '0.0.0.0' && h !== '::');
  const server = await pki.serverCredentials(hosts);
  const service = await pki.serviceCredentials();
  const audit = new FileAuditLog(dataDir);
  const tokens = new TokenStore(resolve(dataDir, 'tokens'));
  const registry = await DeviceRegistry.open(resolve(dataDir, 'devices'), log.child({ component: 'registry' }));

  let broker: EmbeddedBroker | undefined;
  let crlFile: CrlFile | undefined;
  let brokerUrl: string;
  let brokerCa = pki.caCertPem;
  if (config.broker) {
    brokerUrl = config.broker;
    if (config.brokerCa) brokerCa = await readFile(config.brokerCa, 'utf8');
    if (config.brokerCrlFile) {
      crlFile = await startCrlFile({
        path: resolve(config.brokerCrlFile),
        ...(config.brokerCrlReload ? { reloadCommand: config.brokerCrlReload } : {}),
        pki,
        source: registry,
        log: log.child({ component: 'broker-crl' }),
      });
    } else {
      log.warn('external broker without brokerCrlFile: revoked and replaced box certificates can still connect to it (the fleet ignores what they send)');
    }
  } else {
    const mqttHost = config.mqttHost ?? config.httpHost;
    broker = await startEmbeddedBroker({
      host: mqttHost,
      port: config.mqttPort,
      tls: { certPem: server.certPem, keyPem: server.keyPem, caPem: pki.caCertPem },
      directory: registry,
      log: log.child({ component: 'broker' }),
    });
    brokerUrl = `mqtts://${displayHost(mqttHost)}:${broker.port}`;
  }
  const mqttUrl = config.publicMqttUrl ?? brokerUrl;
  const bus = broker ? broker.bus : await connectFleetBus({ url: brokerUrl, caPem: brokerCa, certPem: service.certPem, keyPem: service.keyPem, log: log.child({ component: 'bus' }) });
  const devices = new DeviceService({ registry, bus, audit, config, ...(broker ? { broker } : {}), log: log.child({ component: 'devices' }) });
  await devices.start();
  const releases = await ReleaseStore.open(resolve(dataDir, 'releases'), await Promise.all(config.releasePubkeys.map((p) => readFile(resolve(p), 'utf8'))), Math.round(config.releaseMaxMb * 1e6));
  let releaseBaseUrl = config.releaseBaseUrl?.replace(/\/+$/, '') ?? '';
  const rollouts = new RolloutService({ dir: resolve(dataDir, 'rollouts'), releases, registry, bus, audit, log: log.child({ component: 'rollouts' }), baseUrl: () => releaseBaseUrl, defaultHealthTimeoutMs: config.rolloutHealthTimeoutMs });
  await rollouts.load();

  const app = Fastify({
    loggerInstance: log.child({ component: 'fleet-api' }),
    logController: new LogController({ disableRequestLogging: true }),
    // Studies over a clinic uplink take long: never cut an upload that is still flowing.
    requestTimeout: 0,
    ...(config.tls ? { https: await httpsOptions(pki, hosts) } : {}),
  });
  // First, so the enrolment and receiver routes land in the OpenAPI document too.
  await app.register(fleetOpenApi);
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok', broker: bus.connected ? 'connected' : 'disconnected' }));
  await app.register(enrolRoutes, { pki, tokens, directory: registry, audit, config, mqttUrl, log: log.child({ component: 'enrol' }) });
  await app.register(fleetApi, { registry, devices, tokens, audit, caPin: pki.caPin, config, log: log.child({ component: 'api' }), updates: { releases, rollouts } });
  await app.register(fleetWeb);
  await app.register(stowReceiver, {
    dataDir: resolve(dataDir, 'ingest'),
    log: log.child({ component: 'ingest' }),
    ...(config.publicBaseUrl ? { publicBaseUrl: config.publicBaseUrl } : {}),
    ...(config.forwardUrl
      ? { forward: { baseUrl: config.forwardUrl, ...(config.forwardToken ? { auth: { kind: 'bearer' as const, token: config.forwardToken } } : {}) } }
      : {}),
  });
  await app.listen({ port: config.httpPort, host: config.httpHost });
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : config.httpPort;
  const baseUrl = `${config.tls ? 'https' : 'http'}://${displayHost(config.httpHost)}:${httpPort}`;
  const dicomWebUrl = `${baseUrl}/dicom-web`;
  releaseBaseUrl ||= baseUrl;
  await rollouts.start();
  log.info({ httpPort, baseUrl, mqttUrl, embeddedBroker: Boolean(broker), caPin: pki.caPin, forwardUrl: config.forwardUrl }, 'fleet ready');
  let stopped = false;
  return {
    httpPort,
    mqttPort: broker?.port,
    baseUrl,
    dicomWebUrl,
    mqttUrl,
    pki,
    tokens,
    devices,
    bus,
    async stop() {
      if (stopped) return;
      stopped = true;
      await app.close();
      await rollouts.stop();
      await devices.stop();
      await bus.close();
      await broker?.close();
      await crlFile?.close();
      await registry.close();
      log.info('fleet stopped');
    },
  };
}
