// The fleet API as one fastify plugin: OpenAPI 3 (GET /api/openapi.json, UI at /docs), bearer-token
// auth with roles, JSON errors everywhere, and the device/admin routes. Enrolment (/api/enrol*),
// /healthz and the dashboard's files are registered by their own plugins and stay public.
//
// GET /metrics: a viewer token, or no token at all from loopback (a local Prometheus or the scale
// benchmark). Behind a reverse proxy on the same host every caller looks like loopback: bind the
// fleet to loopback only then, or let the proxy refuse /metrics.
import { resolve } from 'node:path';
import type { FastifyError, FastifyInstance, FastifyPluginAsync } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FleetConfig } from '../../shared/config/fleet.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import { ConfigInvalidError, DeviceRevokedError, DeviceService, UnknownDeviceError } from '../devices/service.ts';
import type { AuditLog } from '../types.ts';
import { ApiTokenStore } from './auth.ts';
import { guard, sendError, targetOf } from './guard.ts';
import { adminRoutes, type EnrolTokens } from './routes-admin.ts';
import { deviceRoutes } from './routes-devices.ts';
import { releaseRoutes } from './routes-releases.ts';
import { rolloutRoutes } from './routes-rollouts.ts';
import type { ReleaseStore } from '../rollouts/releases.ts';
import type { RolloutService } from '../rollouts/service.ts';

export interface FleetApiOptions {
  registry: DeviceRegistry;
  devices: DeviceService;
  tokens: EnrolTokens;
  audit: AuditLog;
  /** Pin of the fleet CA, put into enrolment tokens. */
  caPin: string;
  config: FleetConfig;
  log: Logger;
  /** Defaults to <config.dataDir>/api-tokens.json with config.adminToken as bootstrap admin. */
  apiTokens?: ApiTokenStore;
  /** Releases and rollouts (fleet/rollouts); without them those routes are absent. */
  updates?: { releases: ReleaseStore; rollouts: RolloutService };
}

export const OPENAPI_PATH = '/api/openapi.json';

async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'm-box fleet API', version: '1', description: 'Devices, config, commands, tokens and audit of an m-box fleet. Bearer API tokens with roles viewer < operator < admin.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API token (mbox fleet API tokens, or --admin-token)' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => app.swagger());
}

/**
 * The OpenAPI document and /docs at the root of the app. Optional: register it before the other
 * route plugins (enrolment, receiver) and their routes are documented too; without it fleetApi
 * documents its own routes only.
 */
export const fleetOpenApi: FastifyPluginAsync = async (app) => {
  await registerDocs(app);
};
// Not encapsulated (what fastify-plugin does): swagger must see routes registered beside it.
Object.assign(fleetOpenApi, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'fleet-openapi' });

export const fleetApi: FastifyPluginAsync<FleetApiOptions> = async (app, opts) => {
  const log = opts.log;
  const apiTokens = opts.apiTokens ?? (await ApiTokenStore.open(resolve(opts.config.dataDir), opts.config.adminToken));
  if (!app.hasDecorator('swagger')) await registerDocs(app);

  // An empty JSON body (POST …/revoke from a client that sets the type anyway) reads as none.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(Object.assign(new Error(`request body is not valid JSON: ${(err as Error).message}`), { statusCode: 400 }), undefined);
    }
  });

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    // A change that failed on the way is audited too; a malformed request changed nothing and is
    // not (config validation refusals are audited where they happen).
    const action = req.routeOptions.config?.action;
    const failedChange = !(err instanceof ConfigInvalidError) && (err instanceof DeviceRevokedError || err instanceof UnknownDeviceError || !err.statusCode || err.statusCode >= 500);
    if (action && req.apiCaller && req.method !== 'GET' && failedChange) {
      await opts.audit
        .record({ actor: req.apiCaller.name, action, target: targetOf(req), outcome: 'error', detail: { error: err.message } })
        .catch((auditErr: unknown) => log.error({ err: auditErr }, 'audit write failed'));
    }
    if (err instanceof UnknownDeviceError) return sendError(reply, 404, 'not-found', err.message);
    if (err instanceof ConfigInvalidError) return sendError(reply, 400, 'config-invalid', err.message, { errors: err.errors });
    if (err instanceof DeviceRevokedError) return sendError(reply, 409, 'revoked', err.message);
    if (err.validation) return sendError(reply, 400, 'bad-request', err.message);
    const statusCode = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (statusCode >= 500) req.log.error({ err, url: req.url }, 'fleet API request failed');
    return sendError(reply, statusCode, statusCode >= 500 ? 'internal' : 'bad-request', statusCode >= 500 ? `internal error: ${err.message}` : err.message);
  });

  app.decorateRequest('apiCaller', null);
  // The guard sits in a child context so only these routes (not /docs) are protected.
  await app.register(async (child) => {
    child.addHook('onRequest', guard({ apiTokens, audit: opts.audit, log }));
    const updates = opts.updates;
    if (updates) {
      // GET /api/devices/:id carries the box's update state (DeviceDetail.update), which the
      // device service does not know about.
      child.addHook('preSerialization', async (req, reply, payload) => {
        if (req.method !== 'GET' || req.routeOptions.url !== '/api/devices/:id' || reply.statusCode !== 200 || !payload || typeof payload !== 'object') return payload;
        return { ...payload, update: updates.rollouts.deviceUpdate((req.params as { id: string }).id) };
      });
    }
    await child.register(deviceRoutes, { registry: opts.registry, devices: opts.devices, audit: opts.audit });
    if (updates) {
      await child.register(releaseRoutes, { ...updates, registry: opts.registry, apiTokens, audit: opts.audit, maxBytes: Math.round(opts.config.releaseMaxMb * 1e6) });
      await child.register(rolloutRoutes, { rollouts: updates.rollouts, registry: opts.registry, audit: opts.audit });
    }
    await child.register(adminRoutes, { tokens: opts.tokens, apiTokens, audit: opts.audit, caPin: opts.caPin, metrics: opts.devices.metrics.registry });
  });
  log.info({ bootstrapAdmin: Boolean(opts.config.adminToken), tokens: apiTokens.list().length }, 'fleet API ready');
};
