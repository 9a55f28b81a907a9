// Test helpers for bundles: small stages, reading a bundle's raw entries (unverified) and writing
// altered copies — the attacker's tools, so the tests can prove each alteration is refused.
import { generateKeyPairSync, sign } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { TarReader } from '../../../../image-build/bundle/tar-read.ts';
import { TarWriter } from '../../../../image-build/bundle/tar-write.ts';
import { canonicalJson, keyIdOf, MANIFEST_ENTRY, SIGNATURE_ENTRY, type BundleManifest } from '../../../../shared/update/manifest.ts';

export interface RawEntry {
  path: string;
  mode: number;
  mtime: number;
  body: Buffer;
}

export function keyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Writes files (text or bytes; `x` suffix in the mode map marks executables) under `dir`. */
export async function makeStage(dir: string, files: Record<string, string | Buffer>, executables: string[] = []): Promise<void> {
  for (const [path, body] of Object.entries(files)) {
    const abs = join(dir, path);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, body);
    await chmod(abs, executables.includes(path) ? 0o755 : 0o644);
  }
}

/** Every entry of a bundle, bodies in memory (test-sized bundles only), without any checks beyond the tar's. */
export async function readEntries(file: string): Promise<RawEntry[]> {
  const gunzip = createGunzip();
  createReadStream(file).pipe(gunzip);
  const reader = new TarReader(gunzip as AsyncIterable<Buffer>);
  const out: RawEntry[] = [];
  for (let h = await reader.next(); h; h = await reader.next()) out.push({ path: h.path, mode: h.mode, mtime: h.mtime, body: await reader.readBody(1 << 30, h.path) });
  return out;
}

export async function writeEntries(file: string, entries: RawEntry[]): Promise<void> {
  const gzip = createGzip();
  const done = pipeline(gzip, createWriteStream(file));
  const tar = new TarWriter(gzip);
  for (const e of entries) await tar.addFile({ path: e.path, size: e.body.length, mode: e.mode, mtime: e.mtime }, e.body);
  await tar.finish();
  gzip.end();
  await done;
}

/** Copies `src` to `dest` with its entries altered by `fn`. */
export async function rewrite(src: string, dest: string, fn: (entries: RawEntry[]) => RawEntry[] | void): Promise<void> {
  const entries = await readEntries(src);
  await writeEntries(dest, fn(entries) ?? entries);
}

export function manifestOf(entries: RawEntry[]): BundleManifest {
  return JSON.parse(entries.find((e) => e.path === MANIFEST_ENTRY)!.body.toString('utf8')) as BundleManifest;
}

/** Replaces the manifest (after `mutate`) and signs it with `privateKeyPem` — a validly signed lie. */
export function resign(entries: RawEntry[], privateKeyPem: string, mutate: (m: BundleManifest) => void, opts: { claimKeyId?: string } = {}): RawEntry[] {
  const m = manifestOf(entries);
  mutate(m);
  const bytes = Buffer.from(canonicalJson(m));
  const sig = { algorithm: 'ed25519', keyId: opts.claimKeyId ?? keyIdOf(privateKeyPem), signature: sign(null, bytes, privateKeyPem).toString('base64') };
  return entries.map((e) => (e.path === MANIFEST_ENTRY ? { ...e, body: bytes } : e.path === SIGNATURE_ENTRY ? { ...e, body: Buffer.from(canonicalJson(sig)) } : e));
}
