// The fleet's own certificate authority: one key pair under <fleet dataDir>/ca, created on first
// start (or by `mbox ca init`, which can also import an existing CA). Everything else the fleet
// signs (device, server and service certificates) is issued from here.
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { caPinOf } from '../../shared/fleet/enrol.ts';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { randomSerial, spkiDer, toSigningKey, x509, type SignAlgorithm, type WebCryptoKey } from '../../shared/crypto/x509.ts';

export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';
const CA_VALIDITY_MS = 10 * 365.25 * 86_400_000;

/** A loaded CA, ready to sign. */
export interface LoadedCa {
  dir: string;
  certPem: string;
  cert: x509.X509Certificate;
  der: Buffer;
  pin: string;
  signingKey: WebCryptoKey;
  signAlg: SignAlgorithm;
  /** Key identifier written into issued certificates' AuthorityKeyIdentifier. */
  keyId: string;
}

export class CaError extends Error {
  override name = 'CaError';
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** The CA certificate PEM in `dir`, or undefined when there is none (the CLI needs only the pin). */
export async function readCaCertPem(dir: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, CA_CERT_FILE), 'utf8');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** Loads the CA from `dir`; undefined when neither file exists; throws when only one does or they do not match. */
export async function loadCa(dir: string): Promise<LoadedCa | undefined> {
  const [certPem, keyPem] = await Promise.all([readCaCertPem(dir), readFile(join(dir, CA_KEY_FILE), 'utf8').catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)))]);
  if (certPem === undefined && keyPem === undefined) return undefined;
  if (certPem === undefined || keyPem === undefined) {
    throw new CaError(`incomplete fleet CA in ${dir}: ${certPem === undefined ? CA_CERT_FILE : CA_KEY_FILE} is missing (restore it, or re-create the CA with \`mbox ca init --force\`, which invalidates every enrolled box)`);
  }
  return prepare(dir, certPem, parseKey(keyPem, join(dir, CA_KEY_FILE)));
}

export interface InitCaOptions {
  importCertPem?: string;
  importKeyPem?: string;
  force?: boolean;
}

/** Creates (or imports) the CA in `dir`. Refuses to replace an existing one unless `force`. */
export async function initCa(dir: string, opts: InitCaOptions = {}): Promise<LoadedCa> {
  if (!opts.force) {
    const existing = await readCaCertPem(dir);
    const existingKey = await readFile(join(dir, CA_KEY_FILE)).then(
      () => true,
      () => false,
    );
    if (existing !== undefined || existingKey) {
      throw new CaError(`a fleet CA already exists in ${dir}; replacing it invalidates every enrolled box and token, so pass --force if that is really meant`);
    }
  }
  if ((opts.importCertPem === undefined) !== (opts.importKeyPem === undefined)) {
    throw new CaError('importing a CA needs both the certificate and its private key');
  }
  let certPem: string;
  let key: KeyObject;
  if (opts.importCertPem !== undefined && opts.importKeyPem !== undefined) {
    key = parseKey(opts.importKeyPem, 'the imported key');
    certPem = opts.importCertPem;
    validateImport(certPem, key);
  } else {
    ({ certPem, key } = await createCa());
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Key first: a cert without its key is unusable, a key without its cert is simply re-created.
  await writeFileDurable(join(dir, CA_KEY_FILE), key.export({ type: 'pkcs8', format: 'pem' }), 0o600);
  await writeFileDurable(join(dir, CA_CERT_FILE), certPem, 0o644);
  return prepare(dir, certPem, key);
}

async function createCa(): Promise<{ certPem: string; key: KeyObject }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { signingKey, signAlg } = await toSigningKey(privateKey);
  const now = Date.now();
  const ski = await x509.SubjectKeyIdentifierExtension.create(spkiDer(publicKey));
  // A random suffix tells two fleets' CAs apart in a browser or `openssl x509 -text`.
  const name = `CN=m-box fleet CA ${randomBytes(3).toString('hex')}, O=m-box`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + CA_VALIDITY_MS),
    publicKey: spkiDer(publicKey),
    signingKey,
    signingAlgorithm: signAlg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
    ],
  });
  return { certPem: cert.toString('pem'), key: privateKey };
}

function parseKey(pem: string, what: string): KeyObject {
  try {
    const key = createPrivateKey(pem);
    if (key.type !== 'private') throw new Error('not a private key');
    return key;
  } catch (err) {
    throw new CaError(`${what} is not a readable PEM private key: ${(err as Error).message}`);
  }
}

function validateImport(certPem: string, key: KeyObject): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new CaError(`the imported certificate is not a readable PEM certificate: ${(err as Error).message}`);
  }
  if (!cert.ca) throw new CaError(`the imported certificate (${cert.subject.replace(/\n/g, ', ')}) is not a CA certificate (basicConstraints CA:TRUE is missing)`);
  if (!spkiDer(cert.publicKey).equals(spkiDer(key))) throw new CaError('the imported private key does not belong to the imported certificate');
  const parsed = new x509.X509Certificate(certPem);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw new CaError('the imported CA certificate may not sign certificates (keyUsage lacks keyCertSign)');
  if (new Date(cert.validTo).getTime() < Date.now()) throw new CaError(`the imported CA certificate expired on ${cert.validTo}`);
}

async function prepare(dir: string, certPem: string, key: KeyObject): Promise<LoadedCa> {
  const cert = new x509.X509Certificate(certPem);
  const der = Buffer.from(cert.rawData);
  if (!spkiDer(new X509Certificate(der).publicKey).equals(spkiDer(key))) throw new CaError(`the fleet CA key in ${dir} does not belong to its certificate`);
  const { signingKey, signAlg } = await toSigningKey(key);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski?.keyId ?? (await x509.SubjectKeyIdentifierExtension.create(cert.publicKey)).keyId;
  return { dir, certPem: cert.toString('pem'), cert, der, pin: caPinOf(der), signingKey, signAlg, keyId };
}
