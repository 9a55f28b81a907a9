// Certificate renewal over mutual TLS: the box's current certificate is its credential, the old
// serial stops working once renewed, a revoked device is refused, and the schedule renews a
// certificate that is due and hands the new identity on.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureIdentity, loadIdentity, renewIfDue, scheduleRenewal, EnrolFailure } from '../../../appliance/agent/enrol.ts';
import type { AgentIdentity } from '../../../appliance/agent/identity.ts';
import { enrolFleet, silent, type EnrolFleet } from './enrol-harness.ts';

let fleet: EnrolFleet;
let dataDir: string;
let identity: AgentIdentity;
beforeEach(async () => {
  fleet = await enrolFleet({ validityDays: 30 });
  dataDir = await mkdtemp(join(tmpdir(), 'mbox-renew-box-'));
  const id = await ensureIdentity({ dataDir, fleetUrl: fleet.url, enrolToken: await fleet.token(), firmware: 't', log: silent, onStatus: () => undefined });
  if (!id) throw new Error('enrolment failed');
  identity = id;
});
afterEach(async () => {
  await fleet.destroy();
  await rm(dataDir, { recursive: true, force: true });
});

const failureCode = (p: Promise<unknown>) => p.then(
  () => 'resolved',
  (e: unknown) => (e instanceof EnrolFailure ? e.code : String(e)),
);

describe('certificate renewal', () => {
  it('is not due early in the lifetime, and when forced replaces key and certificate and supersedes the old serial', async () => {
    expect(await renewIfDue(identity, { dataDir, log: silent })).toBe(identity);
    const oldSerial = new X509Certificate(identity.certPem).serialNumber;

    const renewed = await renewIfDue(identity, { dataDir, log: silent, force: true });
    expect(renewed.deviceId).toBe(identity.deviceId);
    expect(renewed.keyPem).not.toBe(identity.keyPem);
    const cert = new X509Certificate(renewed.certPem);
    const ca = new X509Certificate(fleet.pki.caCertPem);
    expect(cert.serialNumber).not.toBe(oldSerial);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe(`CN=${identity.deviceId}`);
    expect(fleet.directory.getIdentity(identity.deviceId)?.certSerial).toBe(cert.serialNumber);

    // On disk: the new pair, nothing staged left over.
    const stored = await loadIdentity(dataDir);
    expect(stored?.certPem).toBe(renewed.certPem);
    expect(stored?.keyPem).toBe(renewed.keyPem);
    expect((await readdir(join(dataDir, 'agent'))).sort()).toEqual(['ca.crt', 'device.crt', 'device.key', 'identity.json']);

    // The superseded certificate no longer renews; the new one does.
    const stale = await renewIfDue(identity, { dataDir: await scratch(), log: silent, force: true }).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(EnrolFailure);
    expect((stale as EnrolFailure).code).toBe('certificate-required');
    expect((stale as EnrolFailure).message).toMatch(/superseded/);
    expect((await renewIfDue(renewed, { dataDir, log: silent, force: true })).certPem).not.toBe(renewed.certPem);

    const audited = await fleet.audit.list({ limit: 10, action: 'enrol.renew' });
    expect(audited.map((e) => e.outcome)).toEqual(['ok', 'refused', 'ok']);
    expect(audited[2]).toMatchObject({ actor: identity.deviceId, target: identity.deviceId, detail: { previousSerial: oldSerial } });
  });

  it('refuses a revoked device with 403 revoked', async () => {
    fleet.directory.revoke(identity.deviceId);
    expect(await failureCode(renewIfDue(identity, { dataDir, log: silent, force: true }))).toBe('revoked');
    expect((await loadIdentity(dataDir))?.certPem).toBe(identity.certPem);
    // The staged key of the refused attempt is gone; the current pair is untouched.
    expect((await readdir(join(dataDir, 'agent'))).sort()).toEqual(['ca.crt', 'device.crt', 'device.key', 'identity.json']);
  });

  it('asks for a certificate when none, or one from another CA, is presented', async () => {
    const none = await post(fleet, {});
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: 'certificate-required' });
    const other = await enrolFleet();
    try {
      const foreign = await ensureIdentity({ dataDir: await scratch(), fleetUrl: other.url, enrolToken: await other.token(), firmware: 't', log: silent, onStatus: () => undefined });
      const res = await post(fleet, { key: foreign!.keyPem, cert: foreign!.certPem });
      expect(res.status).toBe(401);
      expect(String(res.body.message)).toMatch(/not valid/);
    } finally {
      await other.destroy();
    }
  });

  it('renews on schedule when due and hands on the new identity', async () => {
    // Seen from the schedule, the certificate was issued long ago: well past two thirds of its life.
    let current: AgentIdentity = { ...identity, notBefore: new Date(Date.now() - 365 * 86_400_000).toISOString() };
    const renewedIds: AgentIdentity[] = [];
    const schedule = scheduleRenewal(
      () => current,
      (next) => {
        renewedIds.push(next);
        current = next;
      },
      { dataDir, log: silent, checkEveryMs: 50 },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error('no renewal within 10 s')), 10_000);
        const poll = setInterval(() => {
          if (renewedIds.length > 0) {
            clearTimeout(deadline);
            clearInterval(poll);
            resolve();
          }
        }, 20);
      });
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      schedule.stop();
    }
    // A fresh certificate is not due again: exactly one renewal.
    expect(renewedIds).toHaveLength(1);
    expect(renewedIds[0]!.certPem).not.toBe(identity.certPem);
  });
});

const scratchDirs: string[] = [];
async function scratch(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mbox-renew-scratch-'));
  scratchDirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(scratchDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function post(f: EnrolFleet, tls: { key?: string; cert?: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const r = request(
      `${f.url}/api/enrol/renew`,
      { method: 'POST', ca: f.pki.caCertPem, agent: false, headers: { 'content-type': 'application/json' }, ...tls },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
      },
    );
    r.on('error', reject);
    r.end(JSON.stringify({ csr: 'x'.repeat(120), clientTime: new Date().toISOString() }));
  });
}
