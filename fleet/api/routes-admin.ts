// Who am I, enrolment tokens, API tokens, the audit log and the Prometheus metrics.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import QRCode from 'qrcode';
import { ApiTokenInfo, AuditEntry, EnrolTokenInfo } from '../../shared/fleet/api.ts';
import type { Registry } from 'prom-client';
import { parseDuration, type TokenStore } from '../enrol/tokens.ts';
import type { AuditLog } from '../types.ts';
import { TokenConflictError, type ApiTokenStore } from './auth.ts';
import { callerOf, sendError } from './guard.ts';
import { ApiTokenBody, ApiTokenParams, AuditQuery, EnrolTokenBody, ERRORS, TokenIdParams } from './schemas.ts';

/** What the API needs of the enrolment token store (fleet/enrol/tokens.ts). */
export type EnrolTokens = Pick<TokenStore, 'create' | 'list' | 'revoke'>;

export interface AdminRouteOptions {
  tokens: EnrolTokens;
  apiTokens: ApiTokenStore;
  audit: AuditLog;
  caPin: string;
  metrics: Registry;
}

export const adminRoutes: FastifyPluginAsync<AdminRouteOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { tokens, apiTokens, audit } = opts;

  app.get(
    '/api/whoami',
    { config: { role: 'viewer' }, schema: { tags: ['auth'], summary: 'The caller behind the bearer token', response: { 200: Type.Object({ name: Type.String(), role: Type.String() }), ...ERRORS } } },
    async (req) => ({ name: callerOf(req).name, role: callerOf(req).role }),
  );

  const enrolTags = ['enrolment tokens'];
  app.get(
    '/api/tokens/enrolment',
    { config: { role: 'admin', action: 'token.list' }, schema: { tags: enrolTags, summary: 'Enrolment tokens, newest first', response: { 200: Type.Array(EnrolTokenInfo), ...ERRORS } } },
    async () => tokens.list(),
  );

  app.post(
    '/api/tokens/enrolment',
    {
      config: { role: 'admin', action: 'token.create' },
      schema: {
        tags: enrolTags,
        summary: 'Create a one-time enrolment token (shown once, with a QR code)',
        body: EnrolTokenBody,
        response: { 201: Type.Object({ token: Type.String(), qrSvg: Type.String(), info: EnrolTokenInfo }), ...ERRORS },
      },
    },
    async (req, reply) => {
      const by = callerOf(req).name;
      let expiresInMs: number;
      try {
        expiresInMs = parseDuration(req.body.expires);
      } catch (err) {
        return sendError(reply, 400, 'bad-request', (err as Error).message);
      }
      const { token, record } = await tokens.create({ group: req.body.group, labels: req.body.labels ?? {}, expiresInMs, createdBy: by, caPin: opts.caPin });
      await audit.record({ actor: by, action: 'token.create', target: record.tokenId, outcome: 'ok', detail: { group: record.group, expiresAt: record.expiresAt } });
      const info: EnrolTokenInfo = {
        tokenId: record.tokenId,
        group: record.group,
        labels: record.labels,
        createdAt: record.createdAt,
        createdBy: record.createdBy,
        expiresAt: record.expiresAt,
        state: 'pending',
      };
      return reply.code(201).send({ token, qrSvg: await QRCode.toString(token, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 }), info });
    },
  );

  app.delete(
    '/api/tokens/enrolment/:tokenId',
    { config: { role: 'admin', action: 'token.revoke' }, schema: { tags: enrolTags, summary: 'Revoke a pending enrolment token', params: TokenIdParams, response: { 200: Type.Object({ revoked: Type.Boolean() }), ...ERRORS } } },
    async (req, reply) => {
      const by = callerOf(req).name;
      const ok = await tokens.revoke(req.params.tokenId, by);
      await audit.record({ actor: by, action: 'token.revoke', target: req.params.tokenId, outcome: ok ? 'ok' : 'error', ...(ok ? {} : { detail: { reason: 'no such pending token' } }) });
      return ok ? { revoked: true } : sendError(reply, 404, 'not-found', `no pending enrolment token ${req.params.tokenId}`);
    },
  );

  const apiTags = ['API tokens'];
  app.get(
    '/api/tokens/api',
    { config: { role: 'admin', action: 'apitoken.list' }, schema: { tags: apiTags, summary: 'API tokens (never the token text)', response: { 200: Type.Array(ApiTokenInfo), ...ERRORS } } },
    async () => apiTokens.list(),
  );

  app.post(
    '/api/tokens/api',
    {
      config: { role: 'admin', action: 'apitoken.create' },
      schema: { tags: apiTags, summary: 'Create an API token (the token is shown only in this answer)', body: ApiTokenBody, response: { 201: Type.Object({ token: Type.String(), info: ApiTokenInfo }), ...ERRORS } },
    },
    async (req, reply) => {
      const by = callerOf(req).name;
      try {
        const created = await apiTokens.create(req.body.name, req.body.role, by);
        await audit.record({ actor: by, action: 'apitoken.create', target: created.info.id, outcome: 'ok', detail: { name: req.body.name, role: req.body.role } });
        return reply.code(201).send(created);
      } catch (err) {
        if (!(err instanceof TokenConflictError)) throw err;
        await audit.record({ actor: by, action: 'apitoken.create', outcome: 'error', detail: { name: req.body.name, reason: err.message } });
        return sendError(reply, 409, 'conflict', err.message);
      }
    },
  );

  app.delete(
    '/api/tokens/api/:id',
    { config: { role: 'admin', action: 'apitoken.revoke' }, schema: { tags: apiTags, summary: 'Revoke an API token', params: ApiTokenParams, response: { 200: Type.Object({ revoked: Type.Boolean() }), ...ERRORS } } },
    async (req, reply) => {
      const by = callerOf(req).name;
      const gone = await apiTokens.revoke(req.params.id);
      await audit.record({ actor: by, action: 'apitoken.revoke', target: req.params.id, outcome: gone ? 'ok' : 'error', detail: gone ? { name: gone.name } : { reason: 'no such token' } });
      return gone ? { revoked: true } : sendError(reply, 404, 'not-found', `no API token ${req.params.id}`);
    },
  );

  app.get(
    '/api/audit',
    { config: { role: 'admin', action: 'audit.read' }, schema: { tags: ['audit'], summary: 'Audit entries, newest first', querystring: AuditQuery, response: { 200: Type.Array(AuditEntry), ...ERRORS } } },
    async (req) => audit.list(req.query),
  );

  app.get(
    '/metrics',
    {
      config: { role: 'viewer', loopbackOpen: true },
      // No response schema: the body is Prometheus text, sent as is.
      schema: { tags: ['metrics'], summary: 'Prometheus metrics (viewer token, or none from loopback)', produces: ['text/plain'] },
    },
    async (_req, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.metrics()),
  );
};
