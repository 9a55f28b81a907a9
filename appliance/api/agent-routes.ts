// Admin API routes for the fleet agent and for what a person decides locally about held instances.
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AgentStatus } from '../agent/agent.ts';
import { discardHeld, OperatorError, releaseHeld } from '../store/operator.ts';
import type { Store } from '../store/store.ts';
import type { Logger } from '../../shared/log.ts';
import { ErrorBody } from './schemas.ts';

export type AgentStatusSource = () => AgentStatus | undefined;

type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger, TypeBoxTypeProvider>;

const Opt = Type.Optional;
export const AgentBody = Type.Object({
  configured: Type.Boolean(),
  enrolment: Type.Object({
    state: Type.String(),
    deviceId: Opt(Type.String()),
    notAfter: Opt(Type.String()),
    attempt: Opt(Type.Integer()),
    since: Opt(Type.String()),
    code: Opt(Type.String()),
    message: Opt(Type.String()),
    at: Opt(Type.String()),
    retryAt: Opt(Type.String()),
  }),
  deviceId: Type.Union([Type.String(), Type.Null()]),
  connected: Type.Boolean(),
  link: Type.String(),
  linkError: Type.Union([Type.String(), Type.Null()]),
  connectedAt: Type.Union([Type.String(), Type.Null()]),
  lastTelemetryAt: Type.Union([Type.String(), Type.Null()]),
  telemetrySeq: Type.Integer(),
  desiredVersion: Type.Integer(),
  reportedVersion: Type.Integer(),
  reportedStatus: Type.String(),
  reportedError: Opt(Type.String()),
});

const HeldResult = Type.Object({ id: Type.String(), state: Type.String(), detail: Opt(Type.String()) });
const Uid = Type.Object({ uid: Type.String({ minLength: 1, maxLength: 80 }) });

export function registerAgentRoutes(app: App, deps: { store: Store; agent?: AgentStatusSource }): void {
  app.get('/api/agent', { schema: { response: { 200: AgentBody } } }, async () => {
    const s = deps.agent?.();
    if (!s) {
      return {
        configured: false,
        enrolment: { state: 'not-configured' },
        deviceId: null,
        connected: false,
        link: 'not-started',
        linkError: null,
        connectedAt: null,
        lastTelemetryAt: null,
        telemetrySeq: 0,
        desiredVersion: 0,
        reportedVersion: 0,
        reportedStatus: 'none',
      };
    }
    const { reported, ...rest } = s;
    return { configured: true, ...rest, reportedVersion: reported.version, reportedStatus: reported.status, ...(reported.error ? { reportedError: reported.error } : {}) };
  });

  // A person at the box decides: the history records it as the local admin API's doing.
  for (const action of ['release', 'discard'] as const) {
    app.post(
      `/api/held/:uid/${action}`,
      { schema: { params: Uid, response: { 200: HeldResult, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody } } },
      async (req, reply) => {
        // The body is optional (a bare POST is the common case), so it is checked by hand.
        const raw = (req.body as { reason?: unknown } | null | undefined)?.reason;
        if (raw !== undefined && (typeof raw !== 'string' || raw.length > 500)) {
          return reply.status(400).send({ error: 'bad-request', message: 'body.reason must be a string of at most 500 characters', statusCode: 400 });
        }
        const reason = raw;
        try {
          const r = action === 'release' ? await releaseHeld(deps.store, req.params.uid, 'local-api', reason) : await discardHeld(deps.store, req.params.uid, 'local-api', reason);
          const last = r.history.at(-1);
          return { id: r.id, state: r.state, ...(last?.detail ? { detail: last.detail } : {}) };
        } catch (err) {
          if (!(err instanceof OperatorError)) throw err;
          return reply.status(err.statusCode).send({ error: err.code, message: err.message, statusCode: err.statusCode });
        }
      },
    );
  }
}
