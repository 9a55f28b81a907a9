// Issuing certificates from the fleet CA: device client certificates from a box's CSR, and the
// fleet's own server and service certificates.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { CsrError, type IssuedCertificate } from '../types.ts';
import { CERT_BACKDATE_MS, randomSerial, x509 } from '../../shared/crypto/x509.ts';
import type { LoadedCa } from './ca.ts';

const DAY_MS = 86_400_000;
export const DEVICE_URN_PREFIX = 'urn:mbox:device:';

export interface IssueParams {
  /** Distinguished name, e.g. `CN=mb-abc123`. */
  subject: string;
  publicKey: x509.PublicKey | Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** Leaf extensions besides basicConstraints and the key identifiers, which are always set. */
  extensions: x509.Extension[];
}

export async function issueCertificate(ca: LoadedCa, p: IssueParams): Promise<IssuedCertificate> {
  const serial = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: p.subject,
    issuer: ca.cert.subject,
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ca.signAlg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.SubjectKeyIdentifierExtension.create(p.publicKey),
      new x509.AuthorityKeyIdentifierExtension(ca.keyId),
      ...p.extensions,
    ],
  });
  return { certPem: cert.toString('pem'), serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

/**
 * Parses a PKCS#10 PEM, checks its key (EC P-256 or RSA ≥ 2048) and its self-signature. The
 * subject is ignored: the fleet names the device. Throws CsrError saying exactly what is wrong.
 */
export async function checkCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
  } catch (err) {
    throw new CsrError(`the CSR is not a PEM PKCS#10 certificate request (${(err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError(`the CSR's public key cannot be read (${(err as Error).message})`);
  }
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1') throw new CsrError(`the CSR's key is EC on curve ${curve ?? 'unknown'}; the fleet accepts EC P-256 (prime256v1) or RSA ≥ 2048 bits`);
  } else if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new CsrError(`the CSR's key is RSA with ${bits} bits; the fleet accepts RSA ≥ 2048 bits or EC P-256`);
  } else {
    throw new CsrError(`the CSR's key type ${type ?? 'unknown'} is not accepted; use EC P-256 or RSA ≥ 2048 bits`);
  }
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw new CsrError(`the CSR's signature cannot be checked (${(err as Error).message})`);
  }
  if (!ok) throw new CsrError('the CSR signature does not verify: the request was altered or not signed by the key it carries');
  return csr;
}

/** A device's client certificate: CN and SAN URI name the device; clientAuth only. */
export async function issueDeviceCertificate(ca: LoadedCa, csrPem: string, deviceId: string, validityDays: number, now = new Date()): Promise<IssuedCertificate> {
  if (!(validityDays > 0) || !Number.isFinite(validityDays)) throw new RangeError(`device certificate validity must be a positive number of days, got ${validityDays}`);
  const csr = await checkCsr(csrPem);
  return issueCertificate(ca, {
    subject: `CN=${deviceId}`,
    publicKey: csr.publicKey,
    notBefore: new Date(now.getTime() - CERT_BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `${DEVICE_URN_PREFIX}${deviceId}` }]),
    ],
  });
}
