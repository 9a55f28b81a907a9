// Rollouts: create (operator), list and show, pause / resume / abort (operator), and the admin's
// re-approval of a release for one box it failed on. Plus each box's update state.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DeviceUpdate } from '../../shared/fleet/api.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import { RolloutCreate, RolloutSummary, RolloutView } from '../rollouts/schemas.ts';
import { RolloutInputError, StateError, type RolloutService } from '../rollouts/service.ts';
import type { AuditLog } from '../types.ts';
import { callerOf, sendError } from './guard.ts';
import { DeviceParams, ERRORS } from './schemas.ts';

export interface RolloutRouteOptions {
  rollouts: RolloutService;
  registry: DeviceRegistry;
  audit: AuditLog;
}

const tags = ['rollouts'];
const RolloutParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const RetryParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }), deviceId: Type.String({ minLength: 1, maxLength: 64 }) });

/** The service's refusals as API errors, audited; anything else goes to the API's error handler. */
async function refusal(audit: AuditLog, req: FastifyRequest, reply: FastifyReply, err: unknown): Promise<FastifyReply> {
  if (!(err instanceof StateError) && !(err instanceof RolloutInputError)) throw err;
  const code = err instanceof StateError ? 'conflict' : err.code;
  const params = req.params as { id?: string; deviceId?: string };
  await audit.record({
    actor: callerOf(req).name,
    action: req.routeOptions.config.action ?? 'rollout',
    ...(params.id ? { target: params.id } : {}),
    outcome: 'refused',
    detail: { code, error: err.message, ...(params.deviceId ? { deviceId: params.deviceId } : {}) },
  });
  return sendError(reply, code === 'conflict' ? 409 : code === 'not-found' ? 404 : 400, code, err.message);
}

export const rolloutRoutes: FastifyPluginAsync<RolloutRouteOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { rollouts, registry } = opts;

  app.get('/api/rollouts', { config: { role: 'viewer' }, schema: { tags, summary: 'Rollouts, newest first', response: { 200: Type.Array(RolloutSummary), ...ERRORS } } }, async () => rollouts.list());

  app.post(
    '/api/rollouts',
    {
      config: { role: 'operator', action: 'rollout.create' },
      schema: {
        tags,
        summary: 'Roll a release out to a group in waves (default 1 box → 10 % → 50 % → 100 %; sizes are cumulative)',
        body: RolloutCreate,
        response: { 201: RolloutView, ...ERRORS },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(201).send(await rollouts.create(req.body, callerOf(req).name));
      } catch (err) {
        return refusal(opts.audit, req, reply, err);
      }
    },
  );

  app.get(
    '/api/rollouts/:id',
    { config: { role: 'viewer' }, schema: { tags, summary: 'One rollout: waves with their tallies, every box with its status and reason, the timeline', params: RolloutParams, response: { 200: RolloutView, ...ERRORS } } },
    async (req, reply) => rollouts.get(req.params.id) ?? sendError(reply, 404, 'not-found', `no rollout ${req.params.id}`),
  );

  for (const verb of ['pause', 'resume', 'abort'] as const) {
    const summary = {
      pause: 'Pause: withdraw the offers nobody acted on yet and offer nothing more',
      resume: 'Resume: accept the current wave\'s failures so far and go on',
      abort: 'Abort: withdraw the offers nobody acted on yet; the rollout ends',
    }[verb];
    app.post(
      `/api/rollouts/:id/${verb}`,
      { config: { role: 'operator', action: `rollout.${verb}` }, schema: { tags, summary, params: RolloutParams, response: { 200: RolloutView, ...ERRORS } } },
      async (req, reply) => {
        try {
          return await rollouts[verb](req.params.id, callerOf(req).name);
        } catch (err) {
          return refusal(opts.audit, req, reply, err);
        }
      },
    );
  }

  app.post(
    '/api/rollouts/:id/devices/:deviceId/retry',
    {
      config: { role: 'admin', action: 'rollout.retry' },
      schema: { tags, summary: 'Re-approve the release for one box it failed on: offered again with retryApproved', params: RetryParams, response: { 200: RolloutView, ...ERRORS } },
    },
    async (req, reply) => {
      if (!registry.get(req.params.deviceId)) return sendError(reply, 404, 'not-found', `no device ${req.params.deviceId}`);
      try {
        return await rollouts.retry(req.params.id, req.params.deviceId, callerOf(req).name);
      } catch (err) {
        return refusal(opts.audit, req, reply, err);
      }
    },
  );

  app.get(
    '/api/devices/:id/update',
    { config: { role: 'viewer' }, schema: { tags: ['devices'], summary: 'The box\'s update state: last reported status, its newest rollout, releases that failed on it', params: DeviceParams, response: { 200: DeviceUpdate, ...ERRORS } } },
    async (req, reply) => (registry.get(req.params.id) ? rollouts.deviceUpdate(req.params.id) : sendError(reply, 404, 'not-found', `no device ${req.params.id}`)),
  );
};
