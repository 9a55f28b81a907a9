// FleetPki over the CA in <fleet dataDir>/ca: device certificates, plus the fleet's own server and
// service credentials, cached beside the CA and reissued when they no longer fit.
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { FLEET_SERVICE_IDENTITY } from '../../shared/fleet/topics.ts';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { spkiDer, x509 } from '../../shared/crypto/x509.ts';
import type { FleetPki, IssuedCertificate, RevokedSerial } from '../types.ts';
import { initCa, loadCa, type LoadedCa } from './ca.ts';
import { signCrl } from './crl.ts';
import { issueCertificate, issueDeviceCertificate } from './issue.ts';

const DAY_MS = 86_400_000;
/** Server and service certificates live a year and are reissued on start when under 30 days remain. */
const OWN_CERT_VALIDITY_MS = 365 * DAY_MS;
const REISSUE_BEFORE_MS = 30 * DAY_MS;

export { initCa, readCaCertPem, CaError, type InitCaOptions } from './ca.ts';

export interface OpenedPki extends FleetPki {
  /** The CA's directory. */
  dir: string;
}

/** Loads the fleet CA from `dir`, creating one (and logging it) when there is none. */
export async function openPki(dir: string, log: Logger): Promise<OpenedPki> {
  let ca = await loadCa(dir);
  if (!ca) {
    ca = await initCa(dir);
    log.info({ dir, caPin: ca.pin }, 'created a new fleet CA');
  }
  return new Pki(ca);
}

/** Hosts split into SAN DNS names and IPs; localhost and loopback always included, wildcards dropped. */
export function serverNames(hosts: string[]): { dns: string[]; ips: string[] } {
  const dns = new Set(['localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  for (const raw of hosts) {
    const h = raw.trim().replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (h === '' || h === '0.0.0.0' || h === '::') continue;
    (isIP(h) ? ips : dns).add(h);
  }
  return { dns: [...dns].sort(), ips: [...ips].sort() };
}

interface CachedCredentials {
  certPem: string;
  keyPem: string;
}

class Pki implements OpenedPki {
  readonly dir: string;
  readonly caCertPem: string;
  readonly caPin: string;
  private readonly ca: LoadedCa;
  private readonly caX509: X509Certificate;
  // The HTTPS and MQTT listeners ask at the same time on start; one issues, the other waits.
  private chain: Promise<unknown> = Promise.resolve();

  constructor(ca: LoadedCa) {
    this.ca = ca;
    this.dir = ca.dir;
    this.caCertPem = ca.certPem;
    this.caPin = ca.pin;
    this.caX509 = new X509Certificate(ca.der);
  }

  issueDeviceCertificate(csrPem: string, deviceId: string, validityDays: number): Promise<IssuedCertificate> {
    return issueDeviceCertificate(this.ca, csrPem, deviceId, validityDays);
  }

  signCrl(entries: RevokedSerial[], now?: Date): Promise<string> {
    return signCrl(this.ca, entries, now);
  }

  serverCredentials(hosts: string[]): Promise<CachedCredentials> {
    const names = serverNames(hosts);
    const tag = JSON.stringify(names);
    return this.serialised(() =>
      this.cached('server', tag, (publicKey, now) =>
        issueCertificate(this.ca, {
          subject: `CN=${names.dns.find((n) => n !== 'localhost') ?? 'localhost'}`,
          publicKey,
          notBefore: new Date(now - 60_000),
          notAfter: new Date(now + OWN_CERT_VALIDITY_MS),
          extensions: [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
            new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
          ],
        }),
      ),
    );
  }

  serviceCredentials(): Promise<CachedCredentials> {
    return this.serialised(() =>
      this.cached('service', FLEET_SERVICE_IDENTITY, (publicKey, now) =>
        issueCertificate(this.ca, {
          subject: `CN=${FLEET_SERVICE_IDENTITY}`,
          publicKey,
          notBefore: new Date(now - 60_000),
          notAfter: new Date(now + OWN_CERT_VALIDITY_MS),
          extensions: [
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
          ],
        }),
      ),
    );
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * <name>.crt/.key/.json in the CA dir, reused while they were issued by this CA for the same
   * `tag` (host set) and have 30 days left; otherwise a fresh key and certificate replace them.
   */
  private async cached(name: string, tag: string, issue: (publicKey: Buffer, now: number) => Promise<IssuedCertificate>): Promise<CachedCredentials> {
    const paths = { crt: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`), meta: join(this.dir, `${name}.json`) };
    const now = Date.now();
    try {
      const [certPem, keyPem, meta] = await Promise.all([readFile(paths.crt, 'utf8'), readFile(paths.key, 'utf8'), readFile(paths.meta, 'utf8')]);
      const cert = new X509Certificate(certPem);
      const fresh = new Date(cert.validTo).getTime() - now > REISSUE_BEFORE_MS;
      if (fresh && (JSON.parse(meta) as { tag?: string }).tag === tag && cert.checkIssued(this.caX509) && cert.verify(this.caX509.publicKey) && cert.checkPrivateKey(createPrivateKey(keyPem))) {
        return { certPem, keyPem };
      }
    } catch {
      // Missing or unreadable: issue anew below.
    }
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const issued = await issue(spkiDer(privateKey), now);
    await writeFileDurable(paths.key, keyPem, 0o600);
    await writeFileDurable(paths.crt, issued.certPem);
    await writeFileDurable(paths.meta, `${JSON.stringify({ tag, serial: issued.serial, notAfter: issued.notAfter.toISOString() })}\n`);
    return { certPem: issued.certPem, keyPem };
  }
}
