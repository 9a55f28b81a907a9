// What goes into an external broker's CRL: revoked devices, and certificates a renewal or a
// re-enrolment replaced — until they expire.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../../../../fleet/devices/registry.ts';
import { retire, revokedSerialsOf } from '../../../../fleet/devices/revocations.ts';
import type { DeviceIdentityRecord } from '../../../../fleet/types.ts';
import { createLogger } from '../../../../shared/log.ts';
import { identity } from './fixtures.ts';

const NOW = Date.parse('2026-12-01T00:00:00Z');
const record = (over: Partial<DeviceIdentityRecord> = {}): DeviceIdentityRecord => ({ ...identity('mb-aaaa1111'), tags: [], revokedAt: null, certNotAfter: '2027-03-01T00:00:00.000Z', ...over });

describe('revokedSerialsOf / retire', () => {
  it('lists nothing for a device in good standing', () => {
    expect(revokedSerialsOf(record(), NOW)).toEqual([]);
  });

  it("lists a revoked device's certificate until it expires", () => {
    const r = record({ revokedAt: '2026-11-30T00:00:00.000Z' });
    expect(revokedSerialsOf(r, NOW)).toEqual([{ serial: '0A1B2C', revokedAt: '2026-11-30T00:00:00.000Z', reason: 'revoked', notAfter: '2027-03-01T00:00:00.000Z' }]);
    expect(revokedSerialsOf(r, Date.parse('2027-03-02T00:00:00Z'))).toEqual([]);
  });

  it('keeps replaced certificates as superseded and drops expired ones', () => {
    const old = record({ retiredCerts: [{ serial: '01', notAfter: '2026-11-15T00:00:00.000Z', retiredAt: '2026-08-01T00:00:00.000Z', reason: 'superseded' }] });
    const retired = retire(old, 'superseded', NOW);
    expect(retired).toEqual([{ serial: '0A1B2C', notAfter: '2027-03-01T00:00:00.000Z', retiredAt: '2026-12-01T00:00:00.000Z', reason: 'superseded' }]);
  });

  it('a revoked device that enrols again leaves its old certificate revoked', () => {
    const retired = retire(record({ revokedAt: '2026-11-30T00:00:00.000Z' }), 'superseded', NOW);
    expect(retired).toEqual([{ serial: '0A1B2C', notAfter: '2027-03-01T00:00:00.000Z', retiredAt: '2026-11-30T00:00:00.000Z', reason: 'revoked' }]);
  });
});

describe('DeviceRegistry.revokedSerials', () => {
  let dir: string;
  let reg: DeviceRegistry;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mbox-revocations-'));
    reg = await DeviceRegistry.open(dir, createLogger('silent'));
  });
  afterEach(async () => {
    await reg.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('follows renewals, revocations and re-enrolments, tells listeners, and survives a reopen', async () => {
    let changes = 0;
    reg.onCertificatesChanged(() => changes++);
    await reg.register(identity('mb-aaaa1111', { certSerial: 'A1' }));
    await reg.register(identity('mb-bbbb2222', { certSerial: 'B1' }));
    expect(changes).toBe(0);
    expect(reg.revokedSerials()).toEqual([]);

    await reg.renewed('mb-aaaa1111', 'A2', new Date(Date.now() + 90 * 86_400_000).toISOString());
    await reg.revoke('mb-bbbb2222', 'admin');
    await reg.register(identity('mb-bbbb2222', { certSerial: 'B2' }));
    expect(changes).toBe(3);
    const bySerial = (r: DeviceRegistry) => Object.fromEntries(r.revokedSerials().map((e) => [e.serial, e.reason]));
    expect(bySerial(reg)).toEqual({ A1: 'superseded', B1: 'revoked' });
    expect(reg.isRevoked('mb-bbbb2222')).toBe(false);

    await reg.close();
    reg = await DeviceRegistry.open(dir, createLogger('silent'));
    expect(bySerial(reg)).toEqual({ A1: 'superseded', B1: 'revoked' });
  });
});
