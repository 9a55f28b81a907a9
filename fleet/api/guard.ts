// Authentication and role checks for every fleet API route, declared per route as
// `config: { role, action }`. A route without a role needs admin (fail closed). Refusals of callers
// who did authenticate are audited; unauthenticated noise is only logged at debug.
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { roleAtLeast, type Role } from '../../shared/fleet/api.ts';
import type { Logger } from '../../shared/log.ts';
import type { AuditLog } from '../types.ts';
import { bearerOf, type ApiTokenStore, type Caller } from './auth.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Least role the route needs; 'public' for none. */
    role?: Role | 'public';
    /** Loopback callers need no token (GET /metrics for a local Prometheus or benchmark). */
    loopbackOpen?: boolean;
    /** Audit action name, e.g. device.config.set. */
    action?: string;
  }
  interface FastifyRequest {
    apiCaller: Caller | null;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export function isLoopback(address: string | undefined): boolean {
  return address !== undefined && LOOPBACK.has(address);
}

export function sendError(reply: FastifyReply, statusCode: number, error: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
  return reply.code(statusCode).type('application/json').send({ error, message, statusCode, ...extra });
}

/** What a request is about, for the audit log (device id, command id, token id). */
export function targetOf(req: FastifyRequest): string | undefined {
  const p = req.params as Record<string, string | undefined> | undefined;
  return p?.['id'] ?? p?.['cid'] ?? p?.['tokenId'];
}

export function callerOf(req: FastifyRequest): Caller {
  if (!req.apiCaller) throw new Error('route reached without an authenticated caller');
  return req.apiCaller;
}

export function guard(deps: { apiTokens: ApiTokenStore; audit: AuditLog; log: Logger }): onRequestAsyncHookHandler {
  return async function authenticate(req, reply) {
    const cfg = req.routeOptions.config;
    const need = cfg.role ?? 'admin';
    if (need === 'public') return;
    const bearer = bearerOf(req.headers.authorization);
    if ('problem' in bearer) {
      if (cfg.loopbackOpen && isLoopback(req.socket.remoteAddress)) return;
      deps.log.debug({ url: req.url }, 'unauthenticated API call');
      return sendError(reply.header('www-authenticate', 'Bearer'), 401, 'unauthenticated', bearer.problem);
    }
    const caller = deps.apiTokens.authenticate(bearer.token);
    if (!caller) {
      deps.log.debug({ url: req.url }, 'API call with an unknown token');
      return sendError(reply.header('www-authenticate', 'Bearer error="invalid_token"'), 401, 'unauthenticated', 'unknown or revoked API token');
    }
    req.apiCaller = caller;
    if (roleAtLeast(caller.role, need)) return;
    const route = `${req.method} ${req.routeOptions.url ?? req.url}`;
    await deps.audit
      .record({ actor: caller.name, action: cfg.action ?? route, target: targetOf(req), outcome: 'refused', detail: { need, role: caller.role, route } })
      .catch((err: unknown) => deps.log.error({ err }, 'audit write failed'));
    return sendError(reply, 403, 'forbidden', `${route} needs the ${need} role; token '${caller.name}' has the ${caller.role} role`);
  };
}
