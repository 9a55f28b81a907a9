// The box's enrolment pieces on their own: how fleet answers read (codes, the box's own clock
// view), the backoff, when a renewal is due, and finishing or discarding a renewal a power cut
// interrupted.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backoffMs, renewalDue } from '../../../../appliance/agent/enrol.ts';
import { agentPaths, loadIdentity, saveEnrolment, writeDeviceKey } from '../../../../appliance/agent/files.ts';
import { EnrolFailure, readEnrolAnswer } from '../../../../appliance/agent/https.ts';
import type { AgentIdentity } from '../../../../appliance/agent/identity.ts';
import { buildCsr } from '../../../../appliance/agent/csr.ts';
import { openPki, type OpenedPki } from '../../../../fleet/pki/pki.ts';
import { createLogger } from '../../../../shared/log.ts';

const failure = (fn: () => unknown): EnrolFailure => {
  try {
    fn();
  } catch (err) {
    if (err instanceof EnrolFailure) return err;
    throw err;
  }
  throw new Error('did not fail');
};

describe('readEnrolAnswer', () => {
  const sentAt = new Date('2026-01-01T12:00:00Z');
  it('passes the fleet code and message through', () => {
    const f = failure(() => readEnrolAnswer({ status: 409, text: JSON.stringify({ error: 'token-used', message: 'used', statusCode: 409, serverTime: sentAt.toISOString() }) }, sentAt));
    expect([f.code, f.message]).toEqual(['token-used', 'used']);
  });
  it("adds the box's view of the clock difference to clock-skew", () => {
    const body = { error: 'clock-skew', message: 'off', statusCode: 400, serverTime: '2026-01-01T11:00:00Z' };
    const f = failure(() => readEnrolAnswer({ status: 400, text: JSON.stringify(body) }, sentAt));
    expect(f.code).toBe('clock-skew');
    expect(f.message).toMatch(/box clock 2026-01-01T12:00:00.000Z, fleet clock 2026-01-01T11:00:00Z: the box is 3600 s ahead/);
  });
  it('turns anything else into fleet-error, naming the status', () => {
    expect(failure(() => readEnrolAnswer({ status: 502, text: '<html>bad gateway</html>' }, sentAt)).message).toMatch(/HTTP 502.*bad gateway/);
    expect(failure(() => readEnrolAnswer({ status: 404, text: '{"error":"Not Found","message":"Route POST:/api/enrol not found"}' }, sentAt)).code).toBe('fleet-error');
    expect(failure(() => readEnrolAnswer({ status: 200, text: '{}' }, sentAt)).code).toBe('fleet-error');
  });
});

describe('backoffMs', () => {
  it('grows from min to max with jitter and never leaves the bounds', () => {
    const retry = { minMs: 2000, maxMs: 300_000 };
    for (let attempt = 1; attempt < 40; attempt++) {
      const d = backoffMs(attempt, retry);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(300_000);
    }
    expect(backoffMs(1, retry)).toBeLessThanOrEqual(2000);
    expect(backoffMs(30, retry)).toBeGreaterThanOrEqual(150_000);
  });
});

describe('renewalDue', () => {
  const at = (iso: string) => new Date(iso);
  // Issued at 00:05 (notBefore backdated 5 min), 90 days of life.
  const id = { notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2026-04-01T00:05:00.000Z' } as AgentIdentity;
  it('is due once less than a third of the lifetime remains', () => {
    expect(renewalDue(id, at('2026-01-02T00:00:00Z'))).toBe(false);
    expect(renewalDue(id, at('2026-02-28T00:00:00Z'))).toBe(false);
    expect(renewalDue(id, at('2026-03-03T00:00:00Z'))).toBe(true);
    expect(renewalDue(id, at('2026-05-01T00:00:00Z'))).toBe(true);
  });
});

describe('identity files after a power cut during renewal', () => {
  let dir: string;
  let pki: OpenedPki;
  let identity: AgentIdentity;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mbox-agent-files-'));
    pki = await openPki(join(dir, 'fleet-ca'), createLogger('silent'));
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await writeDeviceKey(dir, key.export({ type: 'pkcs8', format: 'pem' }).toString());
    const issued = await pki.issueDeviceCertificate(await buildCsr(key), 'mb-files1', 30);
    const meta = { deviceId: 'mb-files1', group: 'g', labels: {}, fleetUrl: 'https://f', mqttUrl: 'mqtts://f:8883', enrolledAt: new Date().toISOString() };
    identity = await saveEnrolment(dir, meta, issued.certPem, pki.caCertPem);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  async function stageNewPair(withCert: boolean): Promise<{ keyPem: string; certPem: string }> {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
    const { certPem } = await pki.issueDeviceCertificate(await buildCsr(key), 'mb-files1', 30);
    const p = agentPaths(dir);
    await writeFile(p.keyNext, keyPem, { mode: 0o600 });
    if (withCert) await writeFile(p.certNext, certPem);
    return { keyPem, certPem };
  }

  it('loads what enrolment saved, validity from the certificate itself', async () => {
    const loaded = await loadIdentity(dir);
    expect(loaded).toEqual(identity);
    expect(Date.parse(loaded!.notAfter) - Date.now()).toBeGreaterThan(29 * 86_400_000);
  });

  it('keeps the old pair when only the new key was staged', async () => {
    await stageNewPair(false);
    const loaded = await loadIdentity(dir);
    expect(loaded?.keyPem).toBe(identity.keyPem);
    expect(loaded?.certPem).toBe(identity.certPem);
    expect((await readdir(join(dir, 'agent'))).sort()).toEqual(['ca.crt', 'device.crt', 'device.key', 'identity.json']);
  });

  it('finishes the swap when the new certificate was staged, even half-renamed', async () => {
    const staged = await stageNewPair(true);
    const loaded = await loadIdentity(dir);
    expect([loaded?.keyPem, loaded?.certPem]).toEqual([staged.keyPem, staged.certPem]);

    const again = await stageNewPair(true);
    const p = agentPaths(dir);
    // Cut after the key rename, before the certificate rename.
    await (await import('node:fs/promises')).rename(p.keyNext, p.key);
    const resumed = await loadIdentity(dir);
    expect([resumed?.keyPem, resumed?.certPem]).toEqual([again.keyPem, again.certPem]);
    expect(await readFile(p.cert, 'utf8')).toBe(again.certPem);
  });
});
