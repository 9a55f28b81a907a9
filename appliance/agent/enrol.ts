// The box joins a fleet: with a one-time token it sends a CSR for a key it made itself and gets
// back a certificate naming its device id. The fleet's CA is trusted on first contact only if its
// pin matches the token (or it comes from a configured file). Failures show as an EnrolmentStatus
// and a log line with the protocol code; the ones time can fix are retried with backoff, the rest
// stop until a person acts.
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/log.ts';
import { caPinOf, ENROL_PATHS, ENROL_RETRYABLE, formatEnrolToken, parseEnrolToken, type EnrolRequest, type EnrolToken } from '../../shared/fleet/enrol.ts';
import { buildCsr } from './csr.ts';
import { loadIdentity, readPendingKey, saveEnrolment, writeDeviceKey } from './files.ts';
import { checkIssuedCertificate, EnrolFailure, fleetRequest, readEnrolAnswer } from './https.ts';
import type { AgentIdentity, EnrolmentStatus } from './identity.ts';

export { loadIdentity } from './files.ts';
export { renewIfDue, renewalDue, scheduleRenewal } from './renew.ts';
export { EnrolFailure } from './https.ts';

export interface EnrolOptions {
  dataDir: string;
  fleetUrl?: string;
  enrolToken?: string;
  /** PEM file with the fleet CA; when set, the token's pin is not needed. */
  fleetCaFile?: string;
  firmware: string;
  log: Logger;
  onStatus: (s: EnrolmentStatus) => void;
  signal?: AbortSignal;
  retry?: { minMs: number; maxMs: number };
  /** The box's clock (tests simulate a wrong one). */
  now?: () => Date;
}

const DEFAULT_RETRY = { minMs: 2_000, maxMs: 5 * 60_000 };

/**
 * The box's fleet identity: the stored one, or a new one from enrolment. Undefined when no fleet
 * is configured, after a permanent failure (status says which), or when `signal` aborts.
 */
export async function ensureIdentity(opts: EnrolOptions): Promise<AgentIdentity | undefined> {
  const { log, onStatus } = opts;
  const now = opts.now ?? (() => new Date());
  const existing = await loadIdentity(opts.dataDir);
  if (existing) {
    onStatus({ state: 'enrolled', deviceId: existing.deviceId, notAfter: existing.notAfter });
    return existing;
  }
  if (!opts.fleetUrl) {
    onStatus({ state: 'not-configured' });
    return undefined;
  }
  const fleetUrl = opts.fleetUrl;
  const fail = (f: EnrolFailure, retryAt?: Date): void => {
    onStatus({ state: 'failed', code: f.code, message: f.message, at: now().toISOString(), ...(retryAt ? { retryAt: retryAt.toISOString() } : {}) });
    const line = `enrolment failed (${f.code}): ${f.message}`;
    if (retryAt) log.warn({ code: f.code, fleetUrl, retryAt: retryAt.toISOString() }, line);
    else log.error({ code: f.code, fleetUrl }, `${line}; not retrying`);
  };

  const token = opts.enrolToken ? parseEnrolToken(opts.enrolToken) : undefined;
  if (!token) {
    fail(
      new EnrolFailure(
        'token-malformed',
        opts.enrolToken
          ? 'the enrolment token is not in the form mbx1.<id>.<secret>.<pin>: copy the whole last line of `mbox token create`'
          : 'this box has no fleet identity and no enrolment token: set enrolToken (--enrol-token) to a token from `mbox token create`',
      ),
    );
    return undefined;
  }

  const tokenText = formatEnrolToken(token);
  const key = await deviceKey(opts.dataDir);
  const csr = await buildCsr(key);
  const retry = opts.retry ?? DEFAULT_RETRY;
  const since = now().toISOString();
  let caPem: string | undefined;
  for (let attempt = 1; !opts.signal?.aborted; attempt++) {
    onStatus({ state: 'enrolling', attempt, since });
    try {
      caPem ??= await trustedCa(fleetUrl, token, opts);
      const sentAt = now();
      const body: EnrolRequest = { token: tokenText, csr, clientTime: sentAt.toISOString(), firmware: opts.firmware.slice(0, 64), hostname: hostname().slice(0, 253) };
      const res = await fleetRequest({ method: 'POST', fleetUrl, path: ENROL_PATHS.enrol, body, ca: caPem, ...(opts.signal ? { signal: opts.signal } : {}) });
      const answer = readEnrolAnswer(res, sentAt);
      checkIssuedCertificate(answer.certificate, caPem, key, answer.deviceId);
      const meta = { deviceId: answer.deviceId, group: answer.group, labels: answer.labels, fleetUrl, mqttUrl: answer.mqttUrl, enrolledAt: now().toISOString() };
      const identity = await saveEnrolment(opts.dataDir, meta, answer.certificate, caPem);
      onStatus({ state: 'enrolled', deviceId: identity.deviceId, notAfter: identity.notAfter });
      log.info({ deviceId: identity.deviceId, group: identity.group, notAfter: identity.notAfter, attempt }, 'enrolled with the fleet');
      return identity;
    } catch (err) {
      if (!(err instanceof EnrolFailure)) throw err;
      if (opts.signal?.aborted) break;
      if (!ENROL_RETRYABLE.has(err.code)) {
        fail(err);
        return undefined;
      }
      const delay = backoffMs(attempt, retry);
      fail(err, new Date(now().getTime() + delay));
      await sleep(delay, undefined, opts.signal ? { signal: opts.signal } : {}).catch(() => undefined);
    }
  }
  return undefined;
}

/** Exponential backoff with jitter (half fixed, half random), between minMs and maxMs. */
export function backoffMs(attempt: number, retry: { minMs: number; maxMs: number }): number {
  const base = Math.min(retry.maxMs, retry.minMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(Math.max(retry.minMs, base / 2 + Math.random() * (base / 2)));
}

/** The key left by an unfinished attempt, or a new one, on disk (0600) before any CSR leaves the box. */
async function deviceKey(dataDir: string): Promise<KeyObject> {
  const pending = await readPendingKey(dataDir);
  if (pending) return createPrivateKey(pending);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeDeviceKey(dataDir, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  return privateKey;
}

/** The fleet CA this box will trust: the configured file, or the fleet's own CA if it matches the token's pin. */
async function trustedCa(fleetUrl: string, token: EnrolToken, opts: EnrolOptions): Promise<string> {
  if (opts.fleetCaFile) {
    let pem: string;
    try {
      pem = await readFile(opts.fleetCaFile, 'utf8');
      if (!new X509Certificate(pem).ca) throw new Error('not a CA certificate');
    } catch (err) {
      throw new EnrolFailure('fleet-untrusted', `cannot use fleetCa ${opts.fleetCaFile}: ${(err as Error).message}`);
    }
    return pem;
  }
  // Read without verification, then trust only what matches the pin the token carries.
  const res = await fleetRequest({ method: 'GET', fleetUrl, path: ENROL_PATHS.ca, insecure: true, ...(opts.signal ? { signal: opts.signal } : {}) });
  if (res.status !== 200) {
    throw new EnrolFailure('fleet-error', `the fleet answered HTTP ${res.status} for its CA (${ENROL_PATHS.ca}): ${res.text.slice(0, 200)}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(res.text);
  } catch {
    throw new EnrolFailure('fleet-untrusted', `${fleetUrl}${ENROL_PATHS.ca} did not return a certificate: is this an m-box fleet?`);
  }
  const pin = caPinOf(cert.raw);
  if (pin !== token.caPin || !cert.ca) {
    throw new EnrolFailure(
      'fleet-untrusted',
      `the fleet at ${fleetUrl} presented a CA with pin ${pin}, but the enrolment token expects ${token.caPin}: wrong fleet URL, a re-created fleet CA, or something in between; get a token from this fleet or set fleetCa`,
    );
  }
  return cert.toString();
}
