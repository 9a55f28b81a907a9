// Releases: upload (admin; the bundle streams to disk and is verified against the pinned release
// keys), list, show, delete; and the bundle download boxes use — mutual TLS with their current,
// non-revoked device certificate (or an operator API token), with Range so downloads resume.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ApiError, roleAtLeast } from '../../shared/fleet/api.ts';
import { BundleError } from '../../shared/update/manifest.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import { devicePeer } from '../enrol/peer.ts';
import { decideRange } from '../rollouts/range.ts';
import { ReleaseConflictError, UploadTooLargeError, type ReleaseStore } from '../rollouts/releases.ts';
import { ReleaseRecord, Version } from '../rollouts/schemas.ts';
import type { RolloutService } from '../rollouts/service.ts';
import type { AuditLog } from '../types.ts';
import { bearerOf, type ApiTokenStore } from './auth.ts';
import { callerOf, sendError } from './guard.ts';
import { ERRORS } from './schemas.ts';

export interface ReleaseRouteOptions {
  releases: ReleaseStore;
  rollouts: RolloutService;
  registry: DeviceRegistry;
  apiTokens: ApiTokenStore;
  audit: AuditLog;
  /** Largest upload in bytes. */
  maxBytes: number;
}

const tags = ['releases'];
const VersionParams = Type.Object({ version: Version });
const UploadRefused = Type.Composite([ApiError, Type.Object({ code: Type.Optional(Type.String()) })]);

/** Who may download a bundle: a box by its certificate, or a person with an operator token. */
function downloader(req: FastifyRequest, opts: ReleaseRouteOptions): { ok: true; who: string } | { ok: false; status: number; error: string; message: string } {
  const peer = devicePeer(req.socket);
  if (peer.ok) {
    if (opts.registry.isRevoked(peer.deviceId)) return { ok: false, status: 403, error: 'revoked', message: `device ${peer.deviceId} is revoked` };
    if (!opts.registry.getIdentity(peer.deviceId) || !opts.registry.isCurrentSerial(peer.deviceId, peer.serial)) {
      return { ok: false, status: 403, error: 'forbidden', message: `certificate ${peer.serial} is not the current certificate of a device of this fleet` };
    }
    return { ok: true, who: peer.deviceId };
  }
  const bearer = bearerOf(req.headers.authorization);
  if ('problem' in bearer) return { ok: false, status: 401, error: 'unauthenticated', message: `a device certificate or an operator API token is needed (${peer.reason}; ${bearer.problem})` };
  const caller = opts.apiTokens.authenticate(bearer.token);
  if (!caller) return { ok: false, status: 401, error: 'unauthenticated', message: 'unknown or revoked API token' };
  if (!roleAtLeast(caller.role, 'operator')) return { ok: false, status: 403, error: 'forbidden', message: `downloading a bundle needs the operator role; token '${caller.name}' has the ${caller.role} role` };
  return { ok: true, who: caller.name };
}

async function sendBundle(req: FastifyRequest, reply: FastifyReply, version: string, opts: ReleaseRouteOptions): Promise<FastifyReply> {
  const who = downloader(req, opts);
  if (!who.ok) return sendError(reply, who.status, who.error, who.message);
  const rec = opts.releases.get(version);
  if (!rec) return sendError(reply, 404, 'not-found', `no release ${version}`);
  const etag = `"${rec.sha256}"`;
  const ifRange = req.headers['if-range'];
  const decision = decideRange(req.headers.range, rec.size, { etag, ...(typeof ifRange === 'string' ? { ifRange } : {}) });
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', etag)
    .header('cache-control', 'private, no-transform')
    .header('content-disposition', `attachment; filename="mbox-${rec.version}.mbx"`);
  if (decision.kind === 'unsatisfiable') return sendError(reply.header('content-range', `bytes */${rec.size}`), 416, 'range-not-satisfiable', `range ${req.headers.range} is outside the ${rec.size} bytes of ${rec.version}`);
  const path = opts.releases.bundlePath(rec.version);
  reply.type('application/octet-stream');
  // HEAD answers the same headers without opening the file.
  const body = (start?: number, end?: number) => (req.method === 'HEAD' ? undefined : createReadStream(path, start === undefined ? {} : { start, end }));
  if (decision.kind === 'partial') {
    const { start, end } = decision;
    reply.code(206).header('content-range', `bytes ${start}-${end}/${rec.size}`).header('content-length', end - start + 1);
    req.log.debug({ version: rec.version, who: who.who, start, end }, 'bundle range download');
    return reply.send(body(start, end));
  }
  reply.code(200).header('content-length', rec.size);
  req.log.debug({ version: rec.version, who: who.who }, 'bundle download');
  return reply.send(body());
}

export const releaseRoutes: FastifyPluginAsync<ReleaseRouteOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { releases, rollouts, audit } = opts;

  // Bundles are large: the route streams the body to disk itself (and caps it), so fastify must
  // not buffer it. Scoped to this plugin only.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.post(
    '/api/releases',
    {
      bodyLimit: opts.maxBytes,
      config: { role: 'admin', action: 'release.upload' },
      schema: {
        tags,
        summary: 'Upload a signed bundle (raw body, application/octet-stream); verified against the pinned release keys',
        response: { 200: ReleaseRecord, 201: ReleaseRecord, ...ERRORS, 400: UploadRefused, 413: ApiError },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        await audit.record({ actor: caller.name, action: 'release.upload', outcome: 'refused', detail: { code: 'too-large', bytes: declared } });
        return sendError(reply.header('connection', 'close'), 413, 'too-large', `the bundle (${declared} bytes) is larger than the ${opts.maxBytes} bytes the fleet accepts (config releaseMaxMb)`);
      }
      const body = req.body as Readable | undefined;
      if (!body || typeof body.pipe !== 'function') return sendError(reply, 400, 'bad-request', 'send the bundle file as the raw request body with content-type application/octet-stream');
      try {
        const { record, created } = await releases.add(body, caller.name);
        await audit.record({ actor: caller.name, action: 'release.upload', target: record.version, outcome: 'ok', detail: { sha256: record.sha256, size: record.size, keyId: record.keyId, created } });
        return reply.code(created ? 201 : 200).send(record);
      } catch (err) {
        if (err instanceof BundleError) {
          await audit.record({ actor: caller.name, action: 'release.upload', outcome: 'refused', detail: { code: err.code, error: err.message } });
          return sendError(reply, 400, err.code, `bundle refused (${err.code}): ${err.message}`, { code: err.code });
        }
        if (err instanceof ReleaseConflictError) {
          await audit.record({ actor: caller.name, action: 'release.upload', outcome: 'refused', detail: { code: 'conflict', error: err.message } });
          return sendError(reply, 409, 'conflict', err.message);
        }
        if (err instanceof UploadTooLargeError) return sendError(reply.header('connection', 'close'), 413, 'too-large', err.message);
        throw err;
      }
    },
  );

  app.get('/api/releases', { config: { role: 'viewer' }, schema: { tags, summary: 'Releases, newest upload first', response: { 200: Type.Array(ReleaseRecord), ...ERRORS } } }, async () => releases.list());

  app.get(
    '/api/releases/:version',
    { config: { role: 'viewer' }, schema: { tags, summary: 'One release', params: VersionParams, response: { 200: ReleaseRecord, ...ERRORS } } },
    async (req, reply) => releases.get(req.params.version) ?? sendError(reply, 404, 'not-found', `no release ${req.params.version}`),
  );

  app.delete(
    '/api/releases/:version',
    { config: { role: 'admin', action: 'release.delete' }, schema: { tags, summary: 'Delete a release no running or paused rollout uses', params: VersionParams, response: { 200: ReleaseRecord, ...ERRORS } } },
    async (req, reply) => {
      const caller = callerOf(req);
      const { version } = req.params;
      const rec = releases.get(version);
      if (!rec) return sendError(reply, 404, 'not-found', `no release ${version}`);
      const usedBy = rollouts.usesRelease(version);
      if (usedBy) {
        await audit.record({ actor: caller.name, action: 'release.delete', target: version, outcome: 'refused', detail: { rollout: usedBy } });
        return sendError(reply, 409, 'in-use', `release ${version} is offered by rollout ${usedBy}; abort it or let it finish first`);
      }
      await releases.remove(version);
      await audit.record({ actor: caller.name, action: 'release.delete', target: version, outcome: 'ok', detail: { sha256: rec.sha256 } });
      return rec;
    },
  );

  app.route({
    method: ['GET', 'HEAD'],
    url: '/api/releases/:version/bundle',
    // Authenticated here, not by the bearer guard: boxes present their device certificate.
    config: { role: 'public' },
    schema: {
      tags,
      summary: 'The bundle file, for boxes (mutual TLS with the device certificate) or operators; Range requests resume (206/416), ETag = "sha256"',
      params: VersionParams,
      security: [{ bearer: [] }, {}],
    },
    handler: (req, reply) => sendBundle(req, reply, req.params.version, opts),
  });
};
