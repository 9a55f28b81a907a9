// The fleet manager process. Today: the cloud receiver that boxes upload to (STOW-RS, stored
// durably, deduplicated, optionally forwarded to a PACS). Devices, broker and rollouts follow.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import Fastify, { LogController } from 'fastify';
import type { FleetConfig } from '../shared/config/fleet.ts';
import type { Logger } from '../shared/log.ts';
import { stowReceiver } from './ingest/stow-receiver.ts';

export interface RunningFleet {
  httpPort: number;
  /** DICOMweb base URL boxes upload to. */
  dicomWebUrl: string;
  stop(): Promise<void>;
}

export async function startFleet(config: FleetConfig, log: Logger): Promise<RunningFleet> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const app = Fastify({
    loggerInstance: log.child({ component: 'fleet-api' }),
    logController: new LogController({ disableRequestLogging: true }),
    // Studies over a clinic uplink take long: never cut an upload that is still flowing.
    requestTimeout: 0,
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
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
  const dicomWebUrl = `http://${config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost}:${httpPort}/dicom-web`;
  log.info({ httpPort, dicomWebUrl, forwardUrl: config.forwardUrl }, 'fleet ready');
  return {
    httpPort,
    dicomWebUrl,
    async stop() {
      await app.close();
      log.info('fleet stopped');
    },
  };
}
