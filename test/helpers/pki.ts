// A throwaway test PKI made with the openssl command line: a CA, a server certificate for
// 127.0.0.1/localhost and a client certificate signed by it, plus a second "rogue" CA with its own
// client certificate that a box trusting only the first CA must refuse. RSA 2048 keys, SHA-256,
// unencrypted PEM (dcmtk's +tls reads them without a password prompt; Node reads them as is).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (unencrypted). */
  key: string;
}

export interface TestPki {
  dir: string;
  /** The trusted CA: its certificate is what a box gets as --tls-ca and a peer as +cf. */
  ca: KeyPair;
  /** Signed by ca; serverAuth, SAN IP:127.0.0.1, DNS:localhost. */
  server: KeyPair;
  /** Signed by ca; clientAuth. */
  client: KeyPair;
  /** A second CA the box does not trust. */
  rogueCa: KeyPair;
  /** Signed by rogueCa; clientAuth. */
  rogueClient: KeyPair;
  remove(): void;
}

const DAYS = '2';

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

function genKey(dir: string, name: string): string {
  const key = join(dir, `${name}.key`);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], dir);
  return key;
}

function makeCa(dir: string, name: string, cn: string): KeyPair {
  const key = genKey(dir, name);
  const cert = join(dir, `${name}.crt`);
  openssl(
    [
      'req', '-x509', '-new', '-sha256', '-days', DAYS, '-key', key, '-out', cert,
      '-subj', `/O=m-box test/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
    ],
    dir,
  );
  return { cert, key };
}

function makeLeaf(dir: string, name: string, cn: string, issuer: KeyPair, extensions: string[]): KeyPair {
  const key = genKey(dir, name);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  openssl(['req', '-new', '-sha256', '-key', key, '-out', csr, '-subj', `/O=m-box test/CN=${cn}`], dir);
  writeFileSync(
    ext,
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid', ...extensions, ''].join('\n'),
  );
  openssl(
    ['x509', '-req', '-sha256', '-days', DAYS, '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-set_serial', `0x${serial()}`, '-extfile', ext, '-out', cert],
    dir,
  );
  return { cert, key };
}

let counter = 0;
const serial = () => `${Date.now().toString(16)}${(++counter).toString(16).padStart(4, '0')}`;

/** Creates the PKI in a fresh temp dir (~1 s: five RSA keys). Call remove() when done. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-pki-'));
  try {
    const ca = makeCa(dir, 'ca', 'm-box test CA');
    const server = makeLeaf(dir, 'server', 'localhost', ca, ['extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
    const client = makeLeaf(dir, 'client', 'm-box test client', ca, ['extendedKeyUsage=clientAuth']);
    const rogueCa = makeCa(dir, 'rogue-ca', 'm-box rogue CA');
    const rogueClient = makeLeaf(dir, 'rogue-client', 'm-box rogue client', rogueCa, ['extendedKeyUsage=clientAuth']);
    return { dir, ca, server, client, rogueCa, rogueClient, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
