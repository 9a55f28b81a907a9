// Certificate renewal: with a third of its lifetime left the box makes a new key, asks the fleet
// (over mutual TLS with the current certificate) to certify it, and swaps the pair on disk only
// once the new one is complete (files.ts). The old pair keeps working until then.
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Logger } from '../../shared/log.ts';
import { ENROL_PATHS, type RenewRequest } from '../../shared/fleet/enrol.ts';
import { CERT_BACKDATE_MS } from '../../shared/crypto/x509.ts';
import { buildCsr } from './csr.ts';
import { commitRenewal, recoverRenewal, stageRenewalKey } from './files.ts';
import { checkIssuedCertificate, EnrolFailure, fleetRequest, readEnrolAnswer } from './https.ts';
import type { AgentIdentity } from './identity.ts';

/** True when less than a third of the certificate's lifetime (as issued, without the backdating) remains. */
export function renewalDue(identity: AgentIdentity, now = new Date()): boolean {
  const notAfter = Date.parse(identity.notAfter);
  const issued = Date.parse(identity.notBefore) + CERT_BACKDATE_MS;
  const lifetime = Math.max(notAfter - issued, 0);
  return notAfter - now.getTime() < lifetime / 3;
}

/** Renews when due (or forced) and returns the new identity; the same object when nothing was due. Throws EnrolFailure. */
export async function renewIfDue(identity: AgentIdentity, opts: { dataDir: string; log: Logger; now?: Date; force?: boolean }): Promise<AgentIdentity> {
  if (!opts.force && !renewalDue(identity, opts.now ?? new Date())) return identity;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await stageRenewalKey(opts.dataDir, keyPem);
  try {
    return await renew(identity, privateKey, opts);
  } catch (err) {
    // A refused or failed attempt leaves nothing staged (a complete staged pair would be finished instead).
    await recoverRenewal(opts.dataDir).catch(() => undefined);
    throw err;
  }
}

async function renew(identity: AgentIdentity, privateKey: KeyObject, opts: { dataDir: string; log: Logger }): Promise<AgentIdentity> {
  const sentAt = new Date();
  const body: RenewRequest = { csr: await buildCsr(privateKey), clientTime: sentAt.toISOString() };
  const res = await fleetRequest({
    method: 'POST',
    fleetUrl: identity.fleetUrl,
    path: ENROL_PATHS.renew,
    body,
    ca: identity.caPem,
    key: identity.keyPem,
    cert: identity.certPem,
  });
  const answer = readEnrolAnswer(res, sentAt);
  if (answer.deviceId !== identity.deviceId) {
    throw new EnrolFailure('fleet-untrusted', `the fleet renewed the certificate of ${answer.deviceId}, but this box is ${identity.deviceId}`);
  }
  checkIssuedCertificate(answer.certificate, identity.caPem, privateKey, identity.deviceId);
  const renewed = await commitRenewal(
    opts.dataDir,
    { deviceId: identity.deviceId, group: answer.group, labels: answer.labels, fleetUrl: identity.fleetUrl, mqttUrl: answer.mqttUrl, enrolledAt: identity.enrolledAt },
    answer.certificate,
  );
  opts.log.info({ deviceId: renewed.deviceId, notAfter: renewed.notAfter, previousNotAfter: identity.notAfter }, 'device certificate renewed');
  return renewed;
}

/**
 * Checks now and every `checkEveryMs` (default hourly) whether the current identity is due, and
 * hands a renewed one to `onRenewed` (e.g. to reconnect MQTT with it). Failures are logged with
 * their code and tried again at the next check; the current certificate stays in use meanwhile.
 */
export function scheduleRenewal(
  get: () => AgentIdentity,
  onRenewed: (id: AgentIdentity) => void,
  opts: { dataDir: string; log: Logger; checkEveryMs?: number },
): { stop(): void } {
  let stopped = false;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  const check = async (): Promise<void> => {
    if (stopped || running) return;
    running = true;
    try {
      const current = get();
      const next = await renewIfDue(current, { dataDir: opts.dataDir, log: opts.log });
      if (next !== current && !stopped) onRenewed(next);
    } catch (err) {
      const code = err instanceof EnrolFailure ? err.code : 'internal';
      opts.log.error({ code, err }, `certificate renewal failed (${code}): ${(err as Error).message}; will try again`);
    } finally {
      running = false;
    }
  };
  const schedule = (ms: number): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void check().finally(() => schedule(opts.checkEveryMs ?? 3_600_000));
    }, ms);
    timer.unref();
  };
  schedule(0);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
