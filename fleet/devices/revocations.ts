// Which device certificates must no longer connect. The embedded broker asks the registry on every
// connect (isRevoked, isCurrentSerial); an external broker can only read a CRL, so this is the same
// rule written out as a list: a revoked device's certificates, and certificates a renewal or a
// re-enrolment replaced — each until it expires, after which TLS refuses it anyway.
import type { DeviceIdentityRecord, RetiredCert, RevokedSerial } from '../types.ts';

/** The identity's earlier certificates plus `cert`, without the ones already expired at `nowMs`. */
export function retire(identity: DeviceIdentityRecord, reason: RetiredCert['reason'], nowMs: number): RetiredCert[] {
  const retired: RetiredCert = { serial: identity.certSerial, notAfter: identity.certNotAfter, retiredAt: new Date(nowMs).toISOString(), reason };
  // A revoked identity re-enrolled: its last certificate stays revoked, not merely superseded.
  if (identity.revokedAt) Object.assign(retired, { reason: 'revoked', retiredAt: identity.revokedAt });
  return [...(identity.retiredCerts ?? []), retired].filter((c) => Date.parse(c.notAfter) > nowMs);
}

export function revokedSerialsOf(identity: DeviceIdentityRecord, nowMs: number): RevokedSerial[] {
  const out: RevokedSerial[] = [];
  for (const c of identity.retiredCerts ?? []) {
    if (Date.parse(c.notAfter) > nowMs) out.push({ serial: c.serial, revokedAt: c.retiredAt, reason: c.reason, notAfter: c.notAfter });
  }
  if (identity.revokedAt && Date.parse(identity.certNotAfter) > nowMs) {
    out.push({ serial: identity.certSerial, revokedAt: identity.revokedAt, reason: 'revoked', notAfter: identity.certNotAfter });
  }
  return out;
}
