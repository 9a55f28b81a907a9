// The fleet CA: creation and reload, device certificates (chain, names, usages, validity), CSR
// refusals, cached server/service credentials, and `ca init` import/overwrite rules.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildCsr } from '../../../../appliance/agent/csr.ts';
import { openPki, initCa, type OpenedPki } from '../../../../fleet/pki/pki.ts';
import { CsrError } from '../../../../fleet/types.ts';
import { caPinOf } from '../../../../shared/fleet/enrol.ts';
import { createLogger } from '../../../../shared/log.ts';
import { pemToDer, x509 } from '../../../../shared/crypto/x509.ts';

const log = createLogger('silent');
const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

let dir: string;
let pki: OpenedPki;
let ca: X509Certificate;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-pki-'));
  pki = await openPki(join(dir, 'ca'), log);
  ca = new X509Certificate(pki.caCertPem);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('fleet CA', () => {
  it('is created once with a private key only its owner can read, and reloads with the same pin', async () => {
    expect(ca.ca).toBe(true);
    const years = (ca.validToDate.getTime() - Date.now()) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(9.9);
    expect((await stat(join(dir, 'ca', 'ca.key'))).mode & 0o777).toBe(0o600);
    expect(pki.caPin).toBe(caPinOf(pemToDer(pki.caCertPem)));
    expect(pki.caPin).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const again = await openPki(join(dir, 'ca'), log);
    expect(again.caPin).toBe(pki.caPin);
    const parsed = new x509.X509Certificate(pki.caCertPem);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension);
    expect(bc?.ca).toBe(true);
    expect(bc?.critical).toBe(true);
    expect(parsed.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  });

  it('init refuses to replace an existing CA without force, and force makes a new one', async () => {
    await expect(initCa(join(dir, 'ca'))).rejects.toThrow(/already exists.*--force/);
    const fresh = await initCa(join(dir, 'ca'), { force: true });
    expect(fresh.pin).not.toBe(pki.caPin);
    expect((await openPki(join(dir, 'ca'), log)).caPin).toBe(fresh.pin);
  });

  it('imports a matching CA pair and refuses a mismatched key or a non-CA certificate', async () => {
    const certPem = pki.caCertPem;
    const keyPem = await readFile(join(dir, 'ca', 'ca.key'), 'utf8');
    const imported = await initCa(join(dir, 'other'), { importCertPem: certPem, importKeyPem: keyPem });
    expect(imported.pin).toBe(pki.caPin);
    const wrongKey = ec().export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(initCa(join(dir, 'third'), { importCertPem: certPem, importKeyPem: wrongKey })).rejects.toThrow(/does not belong/);
    const key = ec();
    const leaf = await pki.issueDeviceCertificate(await buildCsr(key), 'mb-leaf01', 1);
    await expect(initCa(join(dir, 'fourth'), { importCertPem: leaf.certPem, importKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString() })).rejects.toThrow(/not a CA/);
    await expect(initCa(join(dir, 'fifth'), { importCertPem: certPem })).rejects.toThrow(/both/);
  });
});

describe('device certificates', () => {
  it('chain to the CA and name the device in CN and a SAN URI, for client authentication only', async () => {
    const key = ec();
    const before = Date.now();
    const issued = await pki.issueDeviceCertificate(await buildCsr(key, 'CN=ignored-by-the-fleet'), 'mb-abc123', 90);
    const cert = new X509Certificate(issued.certPem);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(key)).toBe(true);
    expect(cert.subject).toBe('CN=mb-abc123');
    expect(cert.subjectAltName).toBe('URI:urn:mbox:device:mb-abc123');
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    expect(cert.ca).toBe(false);
    expect(cert.serialNumber).toBe(issued.serial);
    expect(issued.serial).toMatch(/^[0-9A-F]{32}$/);
    // Backdated 5 minutes for clock skew; validity counts from now.
    expect(before - cert.validFromDate.getTime()).toBeGreaterThan(4 * 60_000);
    expect(Math.abs(cert.validToDate.getTime() - (before + 90 * 86_400_000))).toBeLessThan(5_000);
    const ku = new x509.X509Certificate(issued.certPem).getExtension(x509.KeyUsagesExtension);
    expect(ku?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
  });

  it('accepts fractional validity and RSA 2048 keys, with distinct serials', async () => {
    const a = await pki.issueDeviceCertificate(await buildCsr(ec()), 'mb-aaaa', 0.001);
    expect(Math.abs(a.notAfter.getTime() - Date.now() - 86_400)).toBeLessThan(3_000);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const b = await pki.issueDeviceCertificate(await buildCsr(rsa), 'mb-bbbb', 1);
    expect(new X509Certificate(b.certPem).checkPrivateKey(rsa)).toBe(true);
    expect(a.serial).not.toBe(b.serial);
  });

  it('refuses a CSR whose signature does not verify', async () => {
    const pem = await buildCsr(ec(), 'CN=aaaaaaaa');
    const der = pemToDer(pem, 'CERTIFICATE REQUEST');
    const at = der.indexOf(Buffer.from('aaaaaaaa'));
    expect(at).toBeGreaterThan(0);
    der[at] = 'b'.charCodeAt(0);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const err = await pki.issueDeviceCertificate(tampered, 'mb-cccc', 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CsrError);
    expect((err as Error).message).toMatch(/signature does not verify/);
  });

  it('refuses unsupported keys and garbage with a precise message', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    await expect(pki.issueDeviceCertificate(await buildCsr(p384), 'mb-dddd', 1)).rejects.toThrow(/curve secp384r1.*P-256/);
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    await expect(pki.issueDeviceCertificate(await buildCsr(rsa1024), 'mb-dddd', 1)).rejects.toThrow(/RSA with 1024 bits/);
    await expect(pki.issueDeviceCertificate('not a csr', 'mb-dddd', 1)).rejects.toBeInstanceOf(CsrError);
  });
});

describe('server and service credentials', () => {
  it('name localhost, loopback and the public hosts, for server auth, and are cached until the hosts change', async () => {
    const one = await pki.serverCredentials(['fleet.example.org', '10.1.2.3', '0.0.0.0']);
    const cert = new X509Certificate(one.certPem);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(one.keyPem))).toBe(true);
    const san = cert.subjectAltName ?? '';
    for (const n of ['DNS:localhost', 'DNS:fleet.example.org', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:10.1.2.3']) expect(san).toContain(n);
    expect(san).not.toContain('0.0.0.0');
    expect(cert.keyUsage).toEqual([SERVER_AUTH]);
    expect(cert.checkHost('fleet.example.org')).toBe('fleet.example.org');
    expect((await stat(join(dir, 'ca', 'server.key'))).mode & 0o777).toBe(0o600);

    const same = await (await openPki(join(dir, 'ca'), log)).serverCredentials(['10.1.2.3', 'FLEET.example.org']);
    expect(same.certPem).toBe(one.certPem);
    const other = await pki.serverCredentials(['fleet.example.org']);
    expect(other.certPem).not.toBe(one.certPem);
    expect(new X509Certificate(other.certPem).subjectAltName).not.toContain('10.1.2.3');
  });

  it('issue the fleet service a client certificate, also cached, and reissue both after a CA change', async () => {
    const [a, b] = await Promise.all([pki.serviceCredentials(), pki.serviceCredentials()]);
    expect(a.certPem).toBe(b.certPem);
    const cert = new X509Certificate(a.certPem);
    expect(cert.subject).toBe('CN=fleet-service');
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    await initCa(join(dir, 'ca'), { force: true });
    const renewed = await (await openPki(join(dir, 'ca'), log)).serviceCredentials();
    expect(renewed.certPem).not.toBe(a.certPem);
  });
});
