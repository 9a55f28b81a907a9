// Who is connecting, and may they: the broker's CONNECT decision as a pure function of the verified
// TLS peer certificate, the client id, the will topic and the device directory. Identity is the
// certificate's CN; the client id must equal it (so one box cannot take over another's session by
// claiming its id) and the MQTT username/password are ignored.
import { TLSSocket } from 'node:tls';
import { identityKind, mayWill } from '../../shared/fleet/acl.ts';
import type { DeviceDirectory } from '../types.ts';

export interface PeerCertificateInfo {
  /** True when the TLS layer verified the chain against the fleet CA. */
  authorized: boolean;
  /** Subject CN; undefined when there is no certificate or the CN is missing or repeated. */
  cn: string | undefined;
  /** Upper-case hex, as node:tls reports it (and as the fleet CA issues it). */
  serial: string | undefined;
}

export type RefusalReason =
  | 'no-certificate'
  | 'unverified-certificate'
  | 'unknown-identity'
  | 'revoked'
  | 'superseded-certificate'
  | 'client-id-mismatch'
  | 'will-not-allowed';

export type ConnectDecision = { ok: true; identity: string } | { ok: false; reason: RefusalReason; cn?: string };

/** Reads the peer certificate of the connection aedes hands us; anything but a TLS socket has none. */
export function peerCertificateOf(conn: unknown): PeerCertificateInfo {
  if (!(conn instanceof TLSSocket)) return { authorized: false, cn: undefined, serial: undefined };
  const cert = conn.getPeerCertificate();
  // An empty object means the peer sent no certificate.
  if (!cert || Object.keys(cert).length === 0) return { authorized: conn.authorized, cn: undefined, serial: undefined };
  const cn: unknown = cert.subject?.CN;
  return {
    authorized: conn.authorized,
    // Several CN attributes make the identity ambiguous: treat as none.
    cn: typeof cn === 'string' ? cn : undefined,
    serial: typeof cert.serialNumber === 'string' ? cert.serialNumber.toUpperCase() : undefined,
  };
}

export function checkConnect(input: {
  peer: PeerCertificateInfo;
  clientId: string;
  willTopic: string | undefined;
  directory: Pick<DeviceDirectory, 'isRevoked' | 'isCurrentSerial'>;
}): ConnectDecision {
  const { peer, clientId, willTopic, directory } = input;
  if (peer.cn === undefined) return { ok: false, reason: 'no-certificate' };
  const cn = peer.cn;
  // rejectUnauthorized already ends the handshake for these; checked again so a misconfigured
  // server can never admit an unverified certificate.
  if (!peer.authorized) return { ok: false, reason: 'unverified-certificate', cn };
  const kind = identityKind(cn);
  if (kind === undefined) return { ok: false, reason: 'unknown-identity', cn };
  if (kind === 'device') {
    if (directory.isRevoked(cn)) return { ok: false, reason: 'revoked', cn };
    if (peer.serial === undefined || !directory.isCurrentSerial(cn, peer.serial)) return { ok: false, reason: 'superseded-certificate', cn };
  }
  if (clientId !== cn) return { ok: false, reason: 'client-id-mismatch', cn };
  if (willTopic !== undefined && !mayWill(cn, willTopic)) return { ok: false, reason: 'will-not-allowed', cn };
  return { ok: true, identity: cn };
}
