// Enrolment end to end over real HTTPS: a box (appliance/agent/enrol.ts) against the fleet's
// enrolment routes, every refusal visible as a status with its code, audited, and never burning a
// token for a failure the token did not cause.
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureIdentity, loadIdentity, type EnrolOptions } from '../../../appliance/agent/enrol.ts';
import type { EnrolmentStatus } from '../../../appliance/agent/identity.ts';
import { buildCsr } from '../../../appliance/agent/csr.ts';
import { pemToDer } from '../../../shared/crypto/x509.ts';
import { formatEnrolToken, parseEnrolToken } from '../../../shared/fleet/enrol.ts';
import { DEVICE_ID_RE } from '../../../shared/fleet/topics.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { enrolFleet, MQTT_URL, silent, type EnrolFleet } from './enrol-harness.ts';

let fleet: EnrolFleet;
let boxDirs: string[] = [];
beforeEach(async () => {
  fleet = await enrolFleet();
});
afterEach(async () => {
  await fleet.destroy();
  await Promise.all(boxDirs.map((d) => rm(d, { recursive: true, force: true })));
  boxDirs = [];
});

async function box(overrides: Partial<EnrolOptions> & { enrolToken?: string } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'mbox-enrol-box-'));
  boxDirs.push(dataDir);
  const statuses: EnrolmentStatus[] = [];
  const opts: EnrolOptions = {
    dataDir,
    fleetUrl: fleet.url,
    firmware: '0.1.0-test',
    log: silent,
    onStatus: (s) => statuses.push(s),
    retry: { minMs: 20, maxMs: 100 },
    ...overrides,
  };
  return { dataDir, statuses, opts, run: (more: Partial<EnrolOptions> = {}) => ensureIdentity({ ...opts, ...more }) };
}

const lastStatus = (s: EnrolmentStatus[]) => s[s.length - 1];
const refusals = async () => (await fleet.audit.list({ limit: 50, action: 'enrol' })).filter((e) => e.outcome === 'refused');

describe('enrolment', () => {
  it('gives the box a certificate for its own key, named by the fleet, and the directory the token group and labels', async () => {
    const b = await box({ enrolToken: await fleet.token({ group: 'north', labels: { clinic: 'Northside' } }) });
    const identity = await b.run();
    expect(identity).toBeDefined();
    const id = identity!.deviceId;
    expect(id).toMatch(DEVICE_ID_RE);
    expect(identity).toMatchObject({ group: 'north', labels: { clinic: 'Northside' }, mqttUrl: MQTT_URL, fleetUrl: fleet.url });
    expect(b.statuses.map((s) => s.state)).toEqual(['enrolling', 'enrolled']);

    const agent = join(b.dataDir, 'agent');
    expect((await stat(join(agent, 'device.key'))).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(join(agent, 'device.crt'), 'utf8'));
    const ca = new X509Certificate(fleet.pki.caCertPem);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe(`CN=${id}`);
    expect(cert.checkPrivateKey(createPrivateKey(await readFile(join(agent, 'device.key'), 'utf8')))).toBe(true);
    expect(await readFile(join(agent, 'ca.crt'), 'utf8')).toBe(ca.toString());

    const record = fleet.directory.getIdentity(id);
    expect(record).toMatchObject({ group: 'north', labels: { clinic: 'Northside' }, firmware: '0.1.0-test', certSerial: cert.serialNumber, revokedAt: null });
    expect(record!.enrolToken).toBe(parseEnrolToken(b.opts.enrolToken!)!.tokenId);
    const [token] = await fleet.tokens.list();
    expect(token).toMatchObject({ state: 'used', deviceId: id });
    const [entry] = await fleet.audit.list({ limit: 1, action: 'enrol' });
    expect(entry).toMatchObject({ actor: 'anonymous', action: 'enrol', outcome: 'ok', target: id, detail: { tokenId: token!.tokenId, group: 'north' } });

    // A restart with the (now used) token keeps the identity and does not ask the fleet again.
    await fleet.close();
    const again = await b.run();
    expect(again?.deviceId).toBe(id);
    expect(lastStatus(b.statuses)).toEqual({ state: 'enrolled', deviceId: id, notAfter: identity!.notAfter });
    expect((await loadIdentity(b.dataDir))?.certPem).toBe(identity!.certPem);
  });

  it('refuses a used token on a second box, permanently and audited', async () => {
    const token = await fleet.token();
    expect(await (await box({ enrolToken: token })).run()).toBeDefined();
    const second = await box({ enrolToken: token });
    expect(await second.run()).toBeUndefined();
    expect(lastStatus(second.statuses)).toMatchObject({ state: 'failed', code: 'token-used' });
    expect(lastStatus(second.statuses)).not.toHaveProperty('retryAt');
    expect(second.statuses.filter((s) => s.state === 'enrolling')).toHaveLength(1);
    expect((await refusals())[0]).toMatchObject({ actor: 'anonymous', outcome: 'refused', detail: { code: 'token-used', tokenId: parseEnrolToken(token)!.tokenId, remoteAddress: '127.0.0.1' } });
  });

  it('refuses expired and unknown tokens', async () => {
    const expired = await fleet.token({ expiresInMs: 1 });
    await new Promise((r) => setTimeout(r, 10));
    const a = await box({ enrolToken: expired });
    expect(await a.run()).toBeUndefined();
    expect(lastStatus(a.statuses)).toMatchObject({ state: 'failed', code: 'token-expired' });

    const unknown = formatEnrolToken({ tokenId: 'abcdefghij', secret: 'A'.repeat(32), caPin: fleet.pki.caPin });
    const b = await box({ enrolToken: unknown });
    expect(await b.run()).toBeUndefined();
    expect(lastStatus(b.statuses)).toMatchObject({ state: 'failed', code: 'token-unknown' });
    expect((await refusals()).map((e) => e.detail?.code).sort()).toEqual(['token-expired', 'token-unknown']);
  });

  it('refuses a box whose clock is off, says by how much, retries, and leaves the token usable', async () => {
    const token = await fleet.token();
    const b = await box({ enrolToken: token });
    const ac = new AbortController();
    const ahead = () => new Date(Date.now() + 3_600_000);
    const pending = b.run({ now: ahead, signal: ac.signal });
    await waitUntil(async () => b.statuses.filter((s) => s.state === 'failed').length >= 2, 10_000, 'two clock-skew refusals');
    ac.abort();
    expect(await pending).toBeUndefined();
    const failed = b.statuses.find((s) => s.state === 'failed');
    expect(failed).toMatchObject({ state: 'failed', code: 'clock-skew' });
    if (failed?.state !== 'failed') throw new Error('unreachable');
    expect(failed.retryAt).toBeDefined();
    expect(failed.message).toMatch(/the box's clock is 3[56]\d\d s ahead of the fleet's.*NTP/);
    expect(failed.message).toMatch(/the box is 3[56]\d\d s ahead\]/);
    expect((await fleet.tokens.list())[0]!.state).toBe('pending');
    expect((await refusals())[0]?.detail?.code).toBe('clock-skew');

    const fixed = await b.run();
    expect(fixed).toBeDefined();
  });

  it('stops at a fleet whose CA does not match the pin in the token', async () => {
    const good = parseEnrolToken(await fleet.token())!;
    const b = await box({ enrolToken: formatEnrolToken({ ...good, caPin: 'X'.repeat(22) }) });
    expect(await b.run()).toBeUndefined();
    const st = lastStatus(b.statuses);
    expect(st).toMatchObject({ state: 'failed', code: 'fleet-untrusted' });
    expect(st).not.toHaveProperty('retryAt');
    expect((await fleet.tokens.list())[0]!.state).toBe('pending');
  });

  it('trusts a configured CA file instead of the pin', async () => {
    const good = parseEnrolToken(await fleet.token())!;
    const b = await box({ enrolToken: formatEnrolToken({ ...good, caPin: 'X'.repeat(22) }) });
    const caFile = join(b.dataDir, 'fleet-ca.pem');
    await writeFile(caFile, fleet.pki.caCertPem);
    expect(await b.run({ fleetCaFile: caFile })).toBeDefined();
  });

  it('retries while the fleet is down and enrols once it is up', async () => {
    await fleet.close();
    const b = await box({ enrolToken: await fleet.token() });
    const pending = b.run();
    await waitUntil(async () => b.statuses.some((s) => s.state === 'failed'), 10_000, 'a fleet-unreachable status');
    expect(b.statuses.find((s) => s.state === 'failed')).toMatchObject({ code: 'fleet-unreachable' });
    await fleet.listen();
    const identity = await pending;
    expect(identity).toBeDefined();
    expect(lastStatus(b.statuses)).toMatchObject({ state: 'enrolled', deviceId: identity!.deviceId });
  });

  it('says what is missing without asking the fleet', async () => {
    const none = await box({ fleetUrl: undefined });
    expect(await none.run()).toBeUndefined();
    expect(none.statuses).toEqual([{ state: 'not-configured' }]);
    const noToken = await box();
    expect(await noToken.run()).toBeUndefined();
    expect(lastStatus(noToken.statuses)).toMatchObject({ state: 'failed', code: 'token-malformed', message: expect.stringMatching(/--enrol-token/) });
    const garbled = await box({ enrolToken: 'mbx1.not-a-token' });
    expect(await garbled.run()).toBeUndefined();
    expect(lastStatus(garbled.statuses)).toMatchObject({ state: 'failed', code: 'token-malformed' });
  });

  it('answers a bad CSR or token form with its code before using the token', async () => {
    const token = await fleet.token();
    const post = (body: unknown) => postJson(fleet, '/api/enrol', body);
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const valid = { token, csr: await buildCsr(key, 'CN=aaaaaaaa'), clientTime: new Date().toISOString(), firmware: 'x' };
    // Same request with one byte of the signed subject changed: the signature no longer matches.
    const der = pemToDer(valid.csr, 'CERTIFICATE REQUEST');
    der[der.indexOf(Buffer.from('aaaaaaaa'))] = 0x62;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const badCsr = await post({ ...valid, csr: tampered });
    expect(badCsr.status).toBe(400);
    expect(badCsr.body).toMatchObject({ error: 'csr-invalid', statusCode: 400, message: expect.stringMatching(/signature does not verify/) });
    expect(typeof badCsr.body.serverTime).toBe('string');
    const badToken = await post({ ...valid, token: 'mbx1.nope' });
    expect(badToken).toMatchObject({ status: 400, body: { error: 'token-malformed' } });
    const missing = await post({ token });
    expect(missing).toMatchObject({ status: 400, body: { error: 'csr-invalid' } });
    expect((await fleet.tokens.list())[0]!.state).toBe('pending');
    const ca = await getText(fleet, '/api/enrol/ca');
    expect(ca).toEqual({ status: 200, type: 'application/x-pem-file', text: fleet.pki.caCertPem });
    const ok = await post(valid);
    expect(ok.status).toBe(200);
  });
});

function postJson(f: EnrolFleet, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const r = request(`${f.url}${path}`, { method: 'POST', ca: f.pki.caCertPem, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    r.on('error', reject);
    r.end(data);
  });
}

function getText(f: EnrolFleet, path: string): Promise<{ status: number; type: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const r = request(`${f.url}${path}`, { ca: f.pki.caCertPem, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], text }));
    });
    r.on('error', reject);
    r.end();
  });
}
