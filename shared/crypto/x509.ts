// The one place that loads @peculiar/x509. It resolves its algorithms through tsyringe, which
// throws at import time unless a Reflect metadata polyfill is loaded first, and it needs a WebCrypto
// provider: Node's own. Import x509 from here, never from the package directly.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPublicKey, randomBytes, type KeyObject, type webcrypto } from 'node:crypto';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

// No DOM lib in this project: WebCrypto types come from node:crypto.
export type WebCryptoKey = webcrypto.CryptoKey;
export type SignAlgorithm = webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;
type ImportAlgorithm = webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams;

/** ECDSA P-256 with SHA-256: every key and signature the fleet makes. */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Certificates start this long before they are issued, so a box whose clock runs a little behind
 * the fleet's can use its certificate at once. Renewal timing subtracts it again.
 */
export const CERT_BACKDATE_MS = 5 * 60_000;

/**
 * A random positive 16-byte serial as upper-case hex, the form node:tls and node:crypto report
 * (`serialNumber`), so serials compare as plain strings everywhere. The top bits are fixed to 01 so
 * the DER integer is positive and never has a leading zero byte to strip.
 */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = 0x40 | (b[0]! & 0x3f);
  return b.toString('hex').toUpperCase();
}

/** WebCrypto signing parameters for a node private key (EC P-256/P-384 or RSA). */
export function signingAlgorithmFor(key: KeyObject): { importAlg: ImportAlgorithm; signAlg: SignAlgorithm } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { importAlg: { name: 'ECDSA', namedCurve: 'P-256' }, signAlg: EC_P256 };
    if (curve === 'secp384r1') return { importAlg: { name: 'ECDSA', namedCurve: 'P-384' }, signAlg: { name: 'ECDSA', hash: 'SHA-384' } };
    throw new Error(`unsupported EC curve ${curve ?? 'unknown'} (use P-256 or P-384)`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, signAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
  }
  throw new Error(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'} (use EC P-256 or RSA)`);
}

/** A node private key as a non-extractable WebCrypto signing key, plus the algorithm to sign with. */
export async function toSigningKey(key: KeyObject): Promise<{ signingKey: WebCryptoKey; signAlg: SignAlgorithm }> {
  const { importAlg, signAlg } = signingAlgorithmFor(key);
  const signingKey = await globalThis.crypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), importAlg, false, ['sign']);
  return { signingKey, signAlg };
}

/** The key pair WebCrypto needs to sign a CSR with a node private key. */
export async function toCryptoKeyPair(key: KeyObject): Promise<{ keys: webcrypto.CryptoKeyPair; signAlg: SignAlgorithm }> {
  const { signingKey, signAlg } = await toSigningKey(key);
  const { importAlg } = signingAlgorithmFor(key);
  const publicKey = await globalThis.crypto.subtle.importKey('spki', spkiDer(key), importAlg, true, ['verify']);
  return { keys: { privateKey: signingKey, publicKey }, signAlg };
}

/** SubjectPublicKeyInfo DER of a private or public node key. */
export function spkiDer(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
}

/** DER bytes of the first PEM block of the given label (CERTIFICATE by default). */
export function pemToDer(pem: string, label = 'CERTIFICATE'): Buffer {
  const re = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`);
  const m = re.exec(pem);
  if (!m) throw new Error(`no ${label} PEM block found`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}
