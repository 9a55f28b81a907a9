// A fleet API instance for unit tests: real registry, token stores and audit file in a temp dir,
// the device service on an in-memory bus. Requests go through fastify's inject.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { ApiTokenStore } from '../../../../fleet/api/auth.ts';
import { FileAuditLog } from '../../../../fleet/api/audit.ts';
import { fleetApi } from '../../../../fleet/api/plugin.ts';
import { DeviceRegistry } from '../../../../fleet/devices/registry.ts';
import { DeviceService } from '../../../../fleet/devices/service.ts';
import { TokenStore } from '../../../../fleet/enrol/tokens.ts';
import { createLogger } from '../../../../shared/log.ts';
import { FakeBus, fleetConfig } from '../devices/fixtures.ts';

export const BOOTSTRAP = 'bootstrap-admin-token-0123456789';
export const CA_PIN = 'AAAAAAAAAAAAAAAAAAAAAA';

export interface ApiHarness {
  app: FastifyInstance;
  dir: string;
  registry: DeviceRegistry;
  devices: DeviceService;
  bus: FakeBus;
  audit: FileAuditLog;
  apiTokens: ApiTokenStore;
  /** Bearer tokens by role. */
  tokens: { viewer: string; operator: string; admin: string };
  close(): Promise<void>;
}

export async function startApiHarness(): Promise<ApiHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'mbox-fleetapi-'));
  const log = createLogger('silent');
  const config = fleetConfig({ dataDir: dir, adminToken: BOOTSTRAP, commandTimeoutMs: 2000 });
  const registry = await DeviceRegistry.open(join(dir, 'devices'), log);
  const bus = new FakeBus();
  const audit = new FileAuditLog(dir);
  const devices = new DeviceService({ registry, bus, audit, config, log });
  await devices.start();
  const apiTokens = await ApiTokenStore.open(dir, BOOTSTRAP);
  const tokens = {
    viewer: (await apiTokens.create('ann-viewer', 'viewer', 'test')).token,
    operator: (await apiTokens.create('otto-operator', 'operator', 'test')).token,
    admin: (await apiTokens.create('ada-admin', 'admin', 'test')).token,
  };
  const app = Fastify({ logger: false });
  await app.register(fleetApi, { registry, devices, tokens: new TokenStore(join(dir, 'tokens')), audit, caPin: CA_PIN, config, log, apiTokens });
  await app.ready();
  return {
    app,
    dir,
    registry,
    devices,
    bus,
    audit,
    apiTokens,
    tokens,
    async close() {
      await app.close();
      await devices.stop();
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
