// The fleet CA's CRL: signed by the CA, in the PEM form OpenSSL reads, with the listed serials,
// reasons and a nextUpdate far enough out that a fleet outage does not lock boxes out.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startCrlFile } from '../../../../fleet/broker/crl-file.ts';
import { CRL_VALIDITY_MS } from '../../../../fleet/pki/crl.ts';
import { openPki, type OpenedPki } from '../../../../fleet/pki/pki.ts';
import type { RevokedSerial } from '../../../../fleet/types.ts';
import { x509 } from '../../../../shared/crypto/x509.ts';
import { createLogger } from '../../../../shared/log.ts';

const log = createLogger('silent');
let dir: string;
let pki: OpenedPki;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-crl-'));
  pki = await openPki(join(dir, 'ca'), log);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const entry = (serial: string, reason: RevokedSerial['reason']): RevokedSerial => ({ serial, reason, revokedAt: '2026-12-01T10:00:00.000Z', notAfter: '2027-03-01T00:00:00.000Z' });

describe('signCrl', () => {
  it('is a CA-signed X509 CRL that openssl verifies, listing each serial', async () => {
    const now = new Date('2026-12-07T00:00:00Z');
    const pem = await pki.signCrl([entry('0a1b2c', 'revoked'), entry('ff01', 'superseded')], now);
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----/);
    const crl = new x509.X509Crl(pem);
    expect(await crl.verify({ publicKey: await new x509.X509Certificate(pki.caCertPem).publicKey.export() })).toBe(true);
    expect(crl.entries.map((e) => e.serialNumber.toLowerCase())).toEqual(['0a1b2c', 'ff01']);
    expect(crl.entries[1]!.reason).toBe(x509.X509CrlReason.superseded);
    expect(crl.nextUpdate!.getTime() - now.getTime()).toBe(CRL_VALIDITY_MS);

    const crlPath = join(dir, 'crl.pem');
    await writeFile(crlPath, pem);
    const out = execFileSync('openssl', ['crl', '-in', crlPath, '-CAfile', join(dir, 'ca', 'ca.crt'), '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toMatch(/Serial Number: 0A1B2C/);
    expect(out).toMatch(/Superseded/);
  });
});

describe('startCrlFile', () => {
  it('writes at start, rewrites on every change (coalesced), and runs the reload command after each write', async () => {
    let serials: RevokedSerial[] = [];
    let notify: (() => void) | undefined;
    const path = join(dir, 'broker', 'crl.pem');
    const marker = join(dir, 'reloads');
    await mkdir(join(dir, 'broker'));
    const file = await startCrlFile({
      path,
      reloadCommand: `echo reload >> '${marker}'`,
      pki,
      source: { revokedSerials: () => serials, onCertificatesChanged: (l) => void (notify = l) },
      log,
    });
    try {
      expect(new x509.X509Crl(await readFile(path, 'utf8')).entries).toHaveLength(0);
      serials = [entry('01', 'revoked')];
      notify!();
      serials = [entry('01', 'revoked'), entry('02', 'superseded')];
      notify!();
      notify!();
      await file.refresh();
      expect(new x509.X509Crl(await readFile(path, 'utf8')).entries.map((e) => e.serialNumber)).toEqual(['01', '02']);
      // Start, the first change, then one write for the two changes that arrived during it.
      expect(file.writes).toBe(3);
      expect((await readFile(marker, 'utf8')).trim().split('\n')).toHaveLength(file.writes);
    } finally {
      await file.close();
    }
  });

  it('refuses to start when the CRL cannot be written; a failing reload is reported, not fatal at start', async () => {
    let notify: (() => void) | undefined;
    const source = { revokedSerials: () => [], onCertificatesChanged: (l: () => void) => void (notify = l) };
    await expect(startCrlFile({ path: join(dir, 'missing-dir', 'crl.pem'), pki, source, log })).rejects.toThrow(/ENOENT/);
    const file = await startCrlFile({ path: join(dir, 'crl.pem'), reloadCommand: 'echo no such broker >&2; exit 3', pki, source, log });
    try {
      expect(file.writes).toBe(1);
      expect(notify).toBeDefined();
      await expect(file.refresh()).rejects.toThrow(/reload command failed.*no such broker/);
      expect(file.writes).toBe(2);
    } finally {
      await file.close();
    }
  });
});
