// The fleet side of enrolment (shared/fleet/enrol.ts): hand out the CA, turn a one-time token and
// a CSR into a device certificate, and renew certificates over mutual TLS. Everything that can fail
// without the token's fault (format, clock, CSR) is checked before the token is used up, and every
// outcome is audited.
import { randomInt } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
// For the OpenAPI fields (tags, summary) on route schemas.
import type {} from '@fastify/swagger';
import type { FleetConfig } from '../../shared/config/fleet.ts';
import type { Logger } from '../../shared/log.ts';
import { ENROL_PATHS, EnrolErrorBody, EnrolRequest, EnrolResponse, parseEnrolToken, RenewRequest, type EnrolErrorCode } from '../../shared/fleet/enrol.ts';
import { CsrError, type AuditLog, type DeviceDirectory, type FleetPki, type IssuedCertificate } from '../types.ts';
import { checkCsr } from '../pki/issue.ts';
import { devicePeer } from './peer.ts';
import type { TokenStore } from './tokens.ts';

export { httpsOptions, type FleetHttpsOptions } from './peer.ts';

export interface EnrolRoutesOptions {
  pki: FleetPki;
  tokens: TokenStore;
  directory: DeviceDirectory;
  audit: AuditLog;
  config: Pick<FleetConfig, 'deviceCertValidityDays' | 'enrolClockSkewS'>;
  /** Broker URL handed to boxes (mqtts://host:port). */
  mqttUrl: string;
  log: Logger;
}

/** Thrown inside a handler to answer with an EnrolErrorBody. */
class Refusal extends Error {
  readonly code: EnrolErrorCode;
  readonly statusCode: number;
  constructor(code: EnrolErrorCode, statusCode: number, message: string) {
    super(message);
    this.code = code;
    this.statusCode = statusCode;
  }
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const newDeviceId = (): string => `mb-${Array.from({ length: 12 }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]).join('')}`;

const errorSchemas = { 400: EnrolErrorBody, 401: EnrolErrorBody, 403: EnrolErrorBody, 409: EnrolErrorBody, 410: EnrolErrorBody };
const TOKEN_REFUSALS = {
  'token-unknown': [401, 'the enrolment token is not known to this fleet (wrong fleet, mistyped, or revoked): create a new one with `mbox token create`'],
  'token-used': [409, 'the enrolment token was already used; each token enrols one box: create a new one with `mbox token create`'],
  'token-expired': [410, 'the enrolment token has expired: create a new one with `mbox token create`'],
} as const;

export const enrolRoutes: FastifyPluginAsync<EnrolRoutesOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const log = opts.log;

  const send = (reply: FastifyReply, r: Refusal): FastifyReply =>
    reply.status(r.statusCode).type('application/json').send({ error: r.code, message: r.message, statusCode: r.statusCode, serverTime: new Date().toISOString() } satisfies EnrolErrorBody);

  /** Runs a handler; refusals and failures are answered, logged and audited uniformly. */
  const guarded = async (
    request: FastifyRequest,
    reply: FastifyReply,
    action: string,
    actor: () => string,
    tokenId: () => string | undefined,
    body: () => Promise<{ target: string; detail: Record<string, unknown>; response: EnrolResponse }>,
  ): Promise<FastifyReply> => {
    try {
      const { target, detail, response } = await body();
      await opts.audit.record({ actor: actor(), action, target, outcome: 'ok', detail });
      return reply.status(200).send(response);
    } catch (err) {
      const refusal = err instanceof Refusal ? err : undefined;
      const detail = { code: refusal?.code ?? 'internal', ...(tokenId() ? { tokenId: tokenId() } : {}), remoteAddress: request.ip };
      await opts.audit.record({ actor: actor(), action, outcome: refusal ? 'refused' : 'error', detail }).catch((auditErr: unknown) => log.error({ err: auditErr }, 'audit write failed'));
      if (!refusal) throw err;
      log.warn({ ...detail, message: refusal.message }, `${action} refused: ${refusal.code}`);
      return send(reply, refusal);
    }
  };

  const checkSkew = (clientTime: string, now: Date): void => {
    const client = Date.parse(clientTime);
    if (Number.isNaN(client)) throw new Refusal('clock-skew', 400, `clientTime '${clientTime}' is not an ISO 8601 time`);
    const skewS = Math.round((client - now.getTime()) / 1000);
    if (Math.abs(skewS) > opts.config.enrolClockSkewS) {
      throw new Refusal(
        'clock-skew',
        400,
        `the box's clock is ${Math.abs(skewS)} s ${skewS > 0 ? 'ahead of' : 'behind'} the fleet's (at most ${opts.config.enrolClockSkewS} s allowed): fix the box's clock (NTP); the token was not used`,
      );
    }
  };

  const checkRequestCsr = async (csr: string): Promise<void> => {
    try {
      await checkCsr(csr);
    } catch (err) {
      if (err instanceof CsrError) throw new Refusal('csr-invalid', 400, err.message);
      throw err;
    }
  };

  /** Schema failures answer in the enrolment format too, so a box can show what was wrong. */
  const schemaRefusal = (request: FastifyRequest): Refusal | undefined => {
    const v = request.validationError;
    if (!v) return undefined;
    const field = /\/(\w+)|property '(\w+)'|'(\w+)'/.exec(v.message)?.slice(1).find(Boolean) ?? '';
    return new Refusal(field === 'csr' ? 'csr-invalid' : 'token-malformed', 400, `invalid enrolment request: ${v.message}`);
  };

  const response = (deviceId: string, group: string, labels: Record<string, string>, issued: IssuedCertificate): EnrolResponse => ({
    deviceId,
    group,
    labels,
    certificate: issued.certPem,
    caCertificate: opts.pki.caCertPem,
    notAfter: issued.notAfter.toISOString(),
    mqttUrl: opts.mqttUrl,
    serverTime: new Date().toISOString(),
  });

  app.get(ENROL_PATHS.ca, { schema: { tags: ['enrol'], summary: 'The fleet CA certificate (PEM); boxes check it against the pin in their token' } }, async (_request, reply) =>
    reply.type('application/x-pem-file').send(opts.pki.caCertPem),
  );

  app.post(
    ENROL_PATHS.enrol,
    {
      attachValidation: true,
      schema: { tags: ['enrol'], summary: 'Enrol a box with a one-time token and a CSR', body: EnrolRequest, response: { 200: EnrolResponse, ...errorSchemas } },
    },
    async (request, reply) => {
      let tokenId: string | undefined;
      return guarded(
        request,
        reply,
        'enrol',
        () => 'anonymous',
        () => tokenId,
        async () => {
          const bad = schemaRefusal(request);
          if (bad) throw bad;
          const body = request.body;
          const now = new Date();
          const token = parseEnrolToken(body.token);
          if (!token) throw new Refusal('token-malformed', 400, 'the enrolment token is not in the form mbx1.<id>.<secret>.<pin>: copy the whole line `mbox token create` printed');
          tokenId = token.tokenId;
          checkSkew(body.clientTime, now);
          await checkRequestCsr(body.csr);
          const deviceId = newDeviceId();
          // Issued before the token is used, so nothing but the token decision remains once it is.
          const issued = await opts.pki.issueDeviceCertificate(body.csr, deviceId, opts.config.deviceCertValidityDays);
          const used = await opts.tokens.consume(token, now);
          if (!used.ok) {
            const [status, message] = TOKEN_REFUSALS[used.code];
            throw new Refusal(used.code, status, message);
          }
          const { group, labels } = used.record;
          await opts.directory.register({
            id: deviceId,
            group,
            labels,
            hostname: body.hostname ?? null,
            firmware: body.firmware || null,
            enrolledAt: now.toISOString(),
            enrolToken: token.tokenId,
            certSerial: issued.serial,
            certNotAfter: issued.notAfter.toISOString(),
          });
          await opts.tokens.markDevice(token.tokenId, deviceId);
          log.info({ deviceId, tokenId: token.tokenId, group, remoteAddress: request.ip }, 'device enrolled');
          return { target: deviceId, detail: { tokenId: token.tokenId, group }, response: response(deviceId, group, labels, issued) };
        },
      );
    },
  );

  app.post(
    ENROL_PATHS.renew,
    {
      attachValidation: true,
      schema: {
        tags: ['enrol'],
        summary: 'Renew a device certificate (mutual TLS with the current certificate)',
        body: RenewRequest,
        response: { 200: EnrolResponse, ...errorSchemas },
      },
    },
    async (request, reply) => {
      let actor = 'anonymous';
      return guarded(
        request,
        reply,
        'enrol.renew',
        () => actor,
        () => undefined,
        async () => {
          const peer = devicePeer(request.raw.socket);
          if (!peer.ok) throw new Refusal('certificate-required', 401, `renewal needs the device's current certificate: ${peer.reason}`);
          const id = peer.deviceId;
          actor = id;
          const identity = opts.directory.getIdentity(id);
          if (!identity) throw new Refusal('certificate-required', 401, `device ${id} is not registered with this fleet: enrol it again with a new token`);
          if (opts.directory.isRevoked(id)) throw new Refusal('revoked', 403, `device ${id} has been revoked: enrol it again with a new token if it should return`);
          if (!opts.directory.isCurrentSerial(id, peer.serial)) {
            throw new Refusal('certificate-required', 401, `superseded certificate: serial ${peer.serial} was replaced by a later renewal; use the newest certificate`);
          }
          const bad = schemaRefusal(request);
          if (bad) throw bad.code === 'token-malformed' ? new Refusal('csr-invalid', 400, bad.message) : bad;
          const now = new Date();
          checkSkew(request.body.clientTime, now);
          await checkRequestCsr(request.body.csr);
          const issued = await opts.pki.issueDeviceCertificate(request.body.csr, id, opts.config.deviceCertValidityDays);
          await opts.directory.renewed(id, issued.serial, issued.notAfter.toISOString());
          log.info({ deviceId: id, serial: issued.serial, previousSerial: peer.serial }, 'device certificate renewed');
          return {
            target: id,
            detail: { serial: issued.serial, previousSerial: peer.serial, notAfter: issued.notAfter.toISOString() },
            response: response(id, identity.group, identity.labels, issued),
          };
        },
      );
    },
  );
};
