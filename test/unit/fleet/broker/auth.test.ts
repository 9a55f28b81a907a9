// The broker's CONNECT decision: identity from the verified certificate only.
import { describe, expect, it } from 'vitest';
import { checkConnect, peerCertificateOf, type PeerCertificateInfo } from '../../../../fleet/broker/auth.ts';
import { FLEET_SERVICE_IDENTITY, topics } from '../../../../shared/fleet/topics.ts';

const A = 'mb-aaaa1111';
const SERIAL = '4A0B';
const directory = {
  isRevoked: (id: string) => id === 'mb-revoked1',
  isCurrentSerial: (id: string, serial: string) => serial === SERIAL && id !== 'mb-unknown1',
};
const peer = (cn: string | undefined, over: Partial<PeerCertificateInfo> = {}): PeerCertificateInfo => ({ authorized: true, cn, serial: SERIAL, ...over });
const decide = (p: PeerCertificateInfo, clientId: string, willTopic?: string) => checkConnect({ peer: p, clientId, willTopic, directory });

describe('checkConnect', () => {
  it('admits a current device certificate whose CN is the client id', () => {
    expect(decide(peer(A), A)).toEqual({ ok: true, identity: A });
    expect(decide(peer(A), A, topics.status(A))).toEqual({ ok: true, identity: A });
  });

  it('admits the fleet service without consulting the device directory', () => {
    expect(decide(peer(FLEET_SERVICE_IDENTITY, { serial: 'FFFF' }), FLEET_SERVICE_IDENTITY)).toEqual({ ok: true, identity: FLEET_SERVICE_IDENTITY });
  });

  it.each([
    ['no-certificate', peer(undefined), A, undefined],
    ['unverified-certificate', peer(A, { authorized: false }), A, undefined],
    ['unknown-identity', peer('localhost'), 'localhost', undefined],
    ['unknown-identity', peer('MB-AAAA1111'), 'MB-AAAA1111', undefined],
    ['revoked', peer('mb-revoked1'), 'mb-revoked1', undefined],
    ['superseded-certificate', peer(A, { serial: 'OLD1' }), A, undefined],
    ['superseded-certificate', peer(A, { serial: undefined }), A, undefined],
    ['superseded-certificate', peer('mb-unknown1'), 'mb-unknown1', undefined],
    ['client-id-mismatch', peer(A), 'mb-bbbb2222', undefined],
    ['client-id-mismatch', peer(A), '', undefined],
    ['client-id-mismatch', peer(FLEET_SERVICE_IDENTITY), 'fleet', undefined],
    ['will-not-allowed', peer(A), A, topics.status('mb-bbbb2222')],
    ['will-not-allowed', peer(A), A, topics.telemetry(A)],
  ] as const)('refuses with %s', (reason, p, clientId, will) => {
    expect(decide(p, clientId, will)).toMatchObject({ ok: false, reason });
  });

  it('checks revocation before the serial, so a revoked box is reported as revoked', () => {
    expect(decide(peer('mb-revoked1', { serial: 'OLD1' }), 'mb-revoked1')).toMatchObject({ reason: 'revoked' });
  });
});

describe('peerCertificateOf', () => {
  it('finds no certificate on anything but a TLS socket', () => {
    expect(peerCertificateOf({})).toEqual({ authorized: false, cn: undefined, serial: undefined });
    expect(peerCertificateOf(null)).toEqual({ authorized: false, cn: undefined, serial: undefined });
  });
});
