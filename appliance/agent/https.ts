// The box's HTTPS calls to the fleet's enrolment endpoints, and how their failures read: every
// failure becomes an EnrolFailure with a protocol code, so the status the box shows always says
// what went wrong and whether retrying can help.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { Value } from '@sinclair/typebox/value';
import { ENROL_ERROR_CODES, EnrolResponse, type EnrolErrorCode } from '../../shared/fleet/enrol.ts';

export class EnrolFailure extends Error {
  override name = 'EnrolFailure';
  readonly code: EnrolErrorCode;
  constructor(code: EnrolErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface FleetRequest {
  method: 'GET' | 'POST';
  /** The fleet's base URL (https://host:port) and the path on it. */
  fleetUrl: string;
  path: string;
  body?: unknown;
  /** The only CA trusted for the server certificate. */
  ca?: string;
  /** Trust-on-first-contact: read without verifying (only for fetching the CA to compare with the pin). */
  insecure?: boolean;
  /** Client identity for mutual TLS. */
  key?: string;
  cert?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface FleetResponse {
  status: number;
  text: string;
}

// Verification failures that a wrong clock explains (and NTP may fix) versus a server the box must not trust.
const CLOCK_TLS_ERRORS = new Set(['CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED']);
const UNTRUSTED_TLS_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function fleetRequest(req: FleetRequest): Promise<FleetResponse> {
  const url = `${req.fleetUrl.replace(/\/+$/, '')}${req.path}`;
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  return new Promise((resolve, reject) => {
    let r: ReturnType<typeof request>;
    try {
      r = request(url, {
        method: req.method,
        // A fresh connection each time: the TLS identity (none, or this certificate) must not be reused from a pool.
        agent: false,
        ...(req.insecure ? { rejectUnauthorized: false } : { ca: req.ca, rejectUnauthorized: true }),
        ...(req.key && req.cert ? { key: req.key, cert: req.cert } : {}),
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
        timeout: req.timeoutMs ?? 30_000,
        ...(req.signal ? { signal: req.signal } : {}),
      });
    } catch (err) {
      reject(new EnrolFailure('fleet-unreachable', `cannot reach the fleet at ${url}: ${(err as Error).message}`));
      return;
    }
    r.on('timeout', () => r.destroy(Object.assign(new Error(`no answer within ${req.timeoutMs ?? 30_000} ms`), { code: 'ETIMEDOUT' })));
    r.on('error', (err: NodeJS.ErrnoException) => reject(describeNetworkError(url, err)));
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => reject(describeNetworkError(url, err)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    r.end(payload);
  });
}

function describeNetworkError(url: string, err: NodeJS.ErrnoException): EnrolFailure {
  const code = err.code ?? '';
  if (CLOCK_TLS_ERRORS.has(code)) {
    return new EnrolFailure('clock-skew', `the fleet's certificate is not valid by this box's clock (${code}, box time ${new Date().toISOString()}): fix the box's clock (NTP)`);
  }
  if (UNTRUSTED_TLS_ERRORS.has(code)) {
    const hint = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? ' (add the host of the fleet URL to the fleet\'s publicHosts)' : ' (not issued by the pinned fleet CA)';
    return new EnrolFailure('fleet-untrusted', `the fleet at ${url} presented a certificate this box does not trust: ${err.message}${hint}`);
  }
  return new EnrolFailure('fleet-unreachable', `cannot reach the fleet at ${url}: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`);
}

/**
 * Reads an enrol/renew answer: the EnrolResponse, or an EnrolFailure carrying the fleet's own code
 * and message. For clock-skew the box's own view of the difference is added.
 */
export function readEnrolAnswer(res: FleetResponse, sentAt: Date): EnrolResponse {
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    body = undefined;
  }
  if (res.status === 200) {
    if (Value.Check(EnrolResponse, body)) return body;
    throw new EnrolFailure('fleet-error', 'the fleet answered 200 without a valid enrolment response');
  }
  const b = body as { error?: unknown; message?: unknown; serverTime?: unknown } | undefined;
  const code = typeof b?.error === 'string' && (ENROL_ERROR_CODES as readonly string[]).includes(b.error) ? (b.error as EnrolErrorCode) : undefined;
  if (!code) {
    const what = typeof b?.message === 'string' ? b.message : res.text.slice(0, 200);
    throw new EnrolFailure('fleet-error', `the fleet answered HTTP ${res.status}: ${what}`);
  }
  let message = typeof b?.message === 'string' ? b.message : `HTTP ${res.status}`;
  if (code === 'clock-skew' && typeof b?.serverTime === 'string' && !Number.isNaN(Date.parse(b.serverTime))) {
    const diffS = Math.round((sentAt.getTime() - Date.parse(b.serverTime)) / 1000);
    message += ` [box clock ${sentAt.toISOString()}, fleet clock ${b.serverTime}: the box is ${Math.abs(diffS)} s ${diffS >= 0 ? 'ahead' : 'behind'}]`;
  }
  throw new EnrolFailure(code, message);
}

/** The issued certificate must chain to the trusted CA and carry this box's key; anything else is not our fleet. */
export function checkIssuedCertificate(certPem: string, caPem: string, key: KeyObject, deviceId: string): void {
  let ok = false;
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    ok = cert.checkIssued(ca) && cert.verify(ca.publicKey) && cert.checkPrivateKey(key) && cert.subject === `CN=${deviceId}`;
  } catch {
    ok = false;
  }
  if (!ok) throw new EnrolFailure('fleet-untrusted', `the certificate the fleet returned for ${deviceId} does not chain to the trusted fleet CA or does not match this box's key`);
}
