// Release signing keys: ed25519, the private key as PKCS#8 PEM (0600), the public key as SPKI PEM
// (what boxes pin at provisioning and the fleet checks uploads against).
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BundleError, keyIdOf } from '../../shared/update/manifest.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';

export const PRIVATE_KEY_FILE = 'bundle-signing.key.pem';
export const PUBLIC_KEY_FILE = 'bundle-signing.pub.pem';

const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

/**
 * Writes `data` at `path` only if nothing is there, never leaving a torn file: a temp file is
 * written and fsynced, then hard-linked into place (link fails on an existing name, atomically).
 */
async function writeNew(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // the umask must not widen or narrow what we asked for
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Creates a new key pair in `dir`; refuses when either key file already exists there. */
export async function initKeys(dir: string): Promise<{ privateKeyPath: string; publicKeyPath: string; keyId: string }> {
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const privateKeyPath = join(root, PRIVATE_KEY_FILE);
  const publicKeyPath = join(root, PUBLIC_KEY_FILE);
  for (const p of [privateKeyPath, publicKeyPath]) if (await exists(p)) throw new Error(`refusing to overwrite the existing key ${p}`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  // Public first: a crash in between leaves a public key alone (harmless, refused next time with a
  // clear message), never a private key whose public half is lost.
  await writeNew(publicKeyPath, publicPem, 0o644);
  await writeNew(privateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  await fsyncPath(root);
  return { privateKeyPath, publicKeyPath, keyId: keyIdOf(publicKey) };
}

/** Parses a signing key; throws a plain Error (a configuration problem, not a bad bundle). */
export function signingKey(privateKeyPem: string): { key: KeyObject; keyId: string } {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new Error(`not a private key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`signing key is ${key.asymmetricKeyType ?? 'unknown'}, not ed25519`);
  return { key, keyId: keyIdOf(createPublicKey(key)) };
}

/** The pinned public keys by key id. A key that is not an ed25519 public key is a configuration error. */
export function pinnedKeys(pubkeys: readonly string[]): Map<string, KeyObject> {
  if (pubkeys.length === 0) throw new BundleError('unknown-key', 'no public keys are pinned: nothing can be verified');
  const out = new Map<string, KeyObject>();
  pubkeys.forEach((pem, i) => {
    // createPublicKey would happily derive a public key from a private one: a private key has no
    // business on a box, so say so instead of accepting it.
    if (/PRIVATE KEY-----/.test(pem)) throw new Error(`pinned key #${i + 1} is a private key: pin the public key`);
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (err) {
      throw new Error(`pinned key #${i + 1} is not a public key: ${(err as Error).message}`);
    }
    if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') throw new Error(`pinned key #${i + 1} is not an ed25519 public key`);
    out.set(keyIdOf(key), key);
  });
  return out;
}
