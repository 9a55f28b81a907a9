// Who is on the other end of a TLS connection, as far as the fleet CA vouches for it. The fleet's
// HTTPS server asks every client for a certificate but does not insist (browsers and API clients
// have none), so each route that needs one checks here.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { DEVICE_ID_RE } from '../../shared/fleet/topics.ts';
import type { FleetPki } from '../types.ts';

export type PeerIdentity = { ok: true; cn: string; serial: string } | { ok: false; reason: string };

/** The CN and serial of a client certificate that chains to the fleet CA, or why there is none. */
export function peerIdentity(socket: Socket): PeerIdentity {
  const tls = socket as Partial<TLSSocket>;
  if (typeof tls.getPeerCertificate !== 'function') return { ok: false, reason: 'this needs HTTPS with a client certificate; the connection is plain HTTP' };
  const cert = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { ok: false, reason: 'no client certificate was presented' };
  if (tls.authorized !== true) {
    const why = tls.authorizationError ? String(tls.authorizationError) : 'not issued by the fleet CA';
    return { ok: false, reason: `the client certificate is not valid (${why})` };
  }
  const raw: unknown = cert.subject?.CN;
  const cn = Array.isArray(raw) ? (raw.length === 1 ? String(raw[0]) : '') : typeof raw === 'string' ? raw : '';
  if (!cn) return { ok: false, reason: 'the client certificate has no single common name' };
  return { ok: true, cn, serial: cert.serialNumber.toUpperCase() };
}

/** Same check for a device: the CN must be a device id. */
export function devicePeer(socket: Socket): { ok: true; deviceId: string; serial: string } | { ok: false; reason: string } {
  const peer = peerIdentity(socket);
  if (!peer.ok) return peer;
  if (!DEVICE_ID_RE.test(peer.cn)) return { ok: false, reason: `the client certificate names '${peer.cn}', which is not a device` };
  return { ok: true, deviceId: peer.cn, serial: peer.serial };
}

export interface FleetHttpsOptions {
  key: string;
  cert: string;
  ca: string[];
  requestCert: true;
  rejectUnauthorized: false;
}

/**
 * Options for the fleet's HTTPS server (fastify `https`): the server certificate for `hosts`, and a
 * request (not a demand) for a client certificate from the fleet CA, which renewal needs.
 */
export async function httpsOptions(pki: FleetPki, hosts: string[]): Promise<FleetHttpsOptions> {
  const { certPem, keyPem } = await pki.serverCredentials(hosts);
  return { key: keyPem, cert: certPem, ca: [pki.caCertPem], requestCert: true, rejectUnauthorized: false };
}
