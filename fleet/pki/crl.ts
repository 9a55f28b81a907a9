// The fleet CA's certificate revocation list, for an external broker (mosquitto's crlfile).
import type { RevokedSerial } from '../types.ts';
import { x509 } from '../../shared/crypto/x509.ts';
import type { LoadedCa } from './ca.ts';

const DAY_MS = 86_400_000;
/**
 * OpenSSL refuses every client once a CRL's nextUpdate has passed, so a fleet that is down would
 * lock the whole fleet out of its broker. 90 days (the default device certificate life) is past the
 * point where boxes could not renew anyway; the fleet re-signs daily and on every change.
 */
export const CRL_VALIDITY_MS = 90 * DAY_MS;

const REASONS: Record<RevokedSerial['reason'], x509.X509CrlReason> = {
  // The fleet is not told why (decommissioned, stolen, replaced), so it does not guess.
  revoked: x509.X509CrlReason.unspecified,
  superseded: x509.X509CrlReason.superseded,
};

export async function signCrl(ca: LoadedCa, entries: RevokedSerial[], now = new Date()): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + CRL_VALIDITY_MS),
    signingKey: ca.signingKey,
    signingAlgorithm: ca.signAlg,
    extensions: [new x509.AuthorityKeyIdentifierExtension(ca.keyId)],
    entries: entries.map((e) => ({ serialNumber: e.serial, revocationDate: new Date(e.revokedAt), reason: REASONS[e.reason] })),
  });
  // OpenSSL (mosquitto) reads only the "X509 CRL" label, not the library's plain "CRL".
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
}
