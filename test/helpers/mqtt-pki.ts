// A throwaway PKI for the MQTT broker tests, made with the openssl command line: a fleet-like CA
// (EC P-256), a server certificate for 127.0.0.1/localhost, client certificates whose CN is any
// identity the test names (device ids, `fleet-service`), and a rogue CA the broker must not trust.
// Serials are upper-case hex, the form node:tls reports, so a fake directory can compare them.
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export interface IssuedLeaf extends PemPair {
  serial: string;
}

export interface MqttTestPki {
  dir: string;
  ca: PemPair;
  server: PemPair;
  /** A fresh client certificate (new key, new serial) with this CN, signed by the CA. */
  issue(cn: string): IssuedLeaf;
  /** The same, signed by a CA nobody trusts. */
  issueRogue(cn: string): IssuedLeaf;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

const serialHex = (): string => {
  const b = randomBytes(16);
  b[0] = 0x40 | (b[0]! & 0x3f);
  return b.toString('hex').toUpperCase();
};

function ecKey(dir: string, name: string): string {
  const path = join(dir, `${name}.key`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path], dir);
  return path;
}

function makeCa(dir: string, name: string, cn: string): { cert: string; key: string } {
  const key = ecKey(dir, name);
  const cert = join(dir, `${name}.crt`);
  openssl(
    ['req', '-x509', '-new', '-sha256', '-days', '2', '-key', key, '-out', cert, '-subj', `/O=m-box test/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash'],
    dir,
  );
  return { cert, key };
}

let seq = 0;
function makeLeaf(dir: string, cn: string, issuer: { cert: string; key: string }, extensions: string[]): IssuedLeaf {
  const name = `leaf-${++seq}`;
  const key = ecKey(dir, name);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  openssl(['req', '-new', '-sha256', '-key', key, '-out', csr, '-subj', `/O=m-box test/CN=${cn}`], dir);
  writeFileSync(ext, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'authorityKeyIdentifier=keyid', ...extensions, ''].join('\n'));
  openssl(['x509', '-req', '-sha256', '-days', '2', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', `0x${serialHex()}`, '-extfile', ext, '-out', cert], dir);
  const certPem = readFileSync(cert, 'utf8');
  return { certPem, keyPem: readFileSync(key, 'utf8'), serial: new X509Certificate(certPem).serialNumber.toUpperCase() };
}

export function createMqttTestPki(): MqttTestPki {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-mqtt-pki-'));
  try {
    const ca = makeCa(dir, 'ca', 'm-box test fleet CA');
    const rogue = makeCa(dir, 'rogue-ca', 'm-box rogue CA');
    const server = makeLeaf(dir, 'localhost', ca, ['extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
    const client = ['extendedKeyUsage=clientAuth'];
    return {
      dir,
      ca: { certPem: readFileSync(ca.cert, 'utf8'), keyPem: readFileSync(ca.key, 'utf8') },
      server,
      issue: (cn) => makeLeaf(dir, cn, ca, client),
      issueRogue: (cn) => makeLeaf(dir, cn, rogue, client),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
