// The tamper matrix: every alteration of a good bundle is refused with its code — by verifyBundle
// and by extractBundle, which must then leave nothing behind.
import { appendFile, copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../../../image-build/bundle/build.ts';
import { extractBundle } from '../../../../image-build/bundle/extract.ts';
import { readManifest, verifyBundle } from '../../../../image-build/bundle/verify.ts';
import { entryHeader } from '../../../../image-build/bundle/tar-write.ts';
import { BundleError, keyIdOf, type BundleErrorCode } from '../../../../shared/update/manifest.ts';
import { keyPair, makeStage, resign, rewrite, type RawEntry } from './tamper.ts';

const keys = keyPair();
const other = keyPair();
let dir: string;
let good: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-verify-'));
  await makeStage(
    join(dir, 'stage'),
    { 'bin/node': Buffer.alloc(200_000, 1), 'package.json': '{"version":"2.0.0"}', 'shared/a.ts': 'export const a = 1;\n', 'shared/b.ts': 'export const b = 2;\n', 'z-last.txt': 'last' },
    ['bin/node'],
  );
  good = join(dir, 'good.mbx');
  await buildBundle({ stageDir: join(dir, 'stage'), out: good, version: '2.0.0', arch: 'arm64', nodeVersion: '24.21.0', createdAt: '2026-11-01T00:00:00Z', dataSchema: 1, privateKeyPem: keys.privateKeyPem });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function variant(fn: (entries: RawEntry[]) => RawEntry[] | void): Promise<string> {
  const out = join(dir, `v${n++}.mbx`);
  await rewrite(good, out, fn);
  return out;
}
async function rawVariant(fn: (file: string) => Promise<void>): Promise<string> {
  const out = join(dir, `v${n++}.mbx`);
  await copyFile(good, out);
  await fn(out);
  return out;
}
const payload = (entries: RawEntry[], path: string) => entries.find((e) => e.path === `payload/${path}`)!;

async function expectRefused(file: string, code: BundleErrorCode, pubkeys = [keys.publicKeyPem], opts: { arch?: 'arm64' | 'x64' } = {}): Promise<void> {
  const err = await verifyBundle(file, pubkeys, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${file} was accepted`).toBeInstanceOf(BundleError);
  expect((err as BundleError).code, (err as Error).message).toBe(code);
  // The same refusal while extracting, and nothing left: not the slot, not a partial sibling.
  const parent = join(dir, `x${n++}`);
  await mkdir(join(parent, 'slot'), { recursive: true });
  await expect(extractBundle(file, join(parent, 'slot'), pubkeys, opts)).rejects.toMatchObject({ code });
  expect(await readdir(parent)).toEqual(['slot']);
  expect(await readdir(join(parent, 'slot'))).toEqual([]);
  await expect(extractBundle(file, join(parent, 'absent'), pubkeys, opts)).rejects.toMatchObject({ code });
  expect(await readdir(parent)).toEqual(['slot']);
}

describe('verifyBundle', () => {
  it('accepts the good bundle with its key, among other pinned keys, and for its arch', async () => {
    const m = await verifyBundle(good, [keys.publicKeyPem]);
    expect(m.version).toBe('2.0.0');
    expect((await verifyBundle(good, [other.publicKeyPem, keys.publicKeyPem], { arch: 'arm64' })).files).toHaveLength(5);
    const { manifest, signature } = await readManifest(good);
    expect(manifest).toEqual(m);
    expect(signature.keyId).toBe(keyIdOf(keys.publicKeyPem));
  });

  const cases: [string, BundleErrorCode, () => Promise<string>][] = [
    ['one byte of one payload file', 'file-mismatch', () => variant((es) => void (payload(es, 'shared/a.ts').body[7]! ^= 1))],
    ['one byte of the big binary', 'file-mismatch', () => variant((es) => void (payload(es, 'bin/node').body[150_000]! ^= 1))],
    ['a payload file one byte longer', 'file-mismatch', () => variant((es) => void (payload(es, 'z-last.txt').body = Buffer.from('last!')))],
    ['one byte of the manifest', 'signature-invalid', () => variant((es) => void (es[0]!.body = Buffer.from(es[0]!.body.toString().replace('"2.0.0"', '"2.0.1"'))))],
    ['one byte of the signature', 'signature-invalid', () => variant((es) => {
      const sig = JSON.parse(es[1]!.body.toString()) as { signature: string };
      const raw = Buffer.from(sig.signature, 'base64');
      raw[10]! ^= 1;
      es[1]!.body = Buffer.from(JSON.stringify({ ...sig, signature: raw.toString('base64') }));
    })],
    ['a signature that is not JSON', 'signature-invalid', () => variant((es) => void (es[1]!.body = Buffer.from('{not json')))],
    ['a different key (not pinned)', 'unknown-key', () => variant((es) => resign(es, other.privateKeyPem, () => undefined))],
    ['a different key claiming the pinned key id', 'signature-invalid', () => variant((es) => resign(es, other.privateKeyPem, () => undefined, { claimKeyId: keyIdOf(keys.publicKeyPem) }))],
    ['a truncated file', 'unreadable', () => rawVariant(async (f) => truncate(f, (await readFile(f)).length - 100))],
    ['a file cut inside the manifest', 'unreadable', () => rawVariant(async (f) => truncate(f, 60))],
    ['appended garbage', 'unreadable', () => rawVariant((f) => appendFile(f, 'garbage'))],
    ['appended zeros', 'unreadable', () => rawVariant((f) => appendFile(f, Buffer.alloc(64)))],
    ['an appended gzip member', 'unreadable', () => rawVariant((f) => appendFile(f, gzipSync(Buffer.alloc(1024, 1))))],
    ['a flipped byte in the compressed stream', 'unreadable', () => rawVariant(async (f) => {
      const b = await readFile(f);
      b[Math.floor(b.length / 2)]! ^= 0xff;
      await writeFile(f, b);
    })],
    ['not a gzip file at all', 'unreadable', () => rawVariant((f) => writeFile(f, 'just text'))],
    ['an extra payload entry', 'file-unexpected', () => variant((es) => [...es, { path: 'payload/zz-extra.sh', mode: 0o755, mtime: 0, body: Buffer.from('rm -rf /') }])],
    ['an extra entry outside payload/', 'file-unexpected', () => variant((es) => [...es.slice(0, 2), { path: 'evil', mode: 0o644, mtime: 0, body: Buffer.from('x') }, ...es.slice(2)])],
    ['reordered payload entries', 'unreadable', () => variant((es) => [es[0]!, es[1]!, es[3]!, es[2]!, ...es.slice(4)])],
    ['a repeated payload entry', 'unreadable', () => variant((es) => [...es.slice(0, 4), es[3]!, ...es.slice(4)])],
    ['the last payload file missing', 'file-missing', () => variant((es) => es.slice(0, -1))],
    ['the signature entry missing', 'unreadable', () => variant((es) => [es[0]!, ...es.slice(2)])],
    ['the manifest not first', 'unreadable', () => variant((es) => [es[1]!, es[0]!, ...es.slice(2)])],
    ['an entry path with ..', 'unreadable', () => variant((es) => void (es[2]!.path = 'payload/../../etc/cron.d/x'))],
    ['a signed manifest listing a path with ..', 'manifest-invalid', () => variant((es) => {
      const out = resign(es, keys.privateKeyPem, (m) => void (m.files[0]!.path = '../escape'));
      out[2]!.path = 'payload/escape';
      return out;
    })],
    ['a signed manifest that breaks the schema', 'manifest-invalid', () => variant((es) => resign(es, keys.privateKeyPem, (m) => void Object.assign(m, { extra: true })))],
    ['a manifest too large to read unsigned', 'unreadable', () => variant((es) => void (es[0]!.body = Buffer.alloc(17 * 1024 * 1024, 0x20)))],
  ];
  for (const [what, code, make] of cases) {
    it(`refuses ${what} (${code})`, async () => {
      await expectRefused(await make(), code);
    });
  }

  it('refuses a bundle for another arch (wrong-arch) and with no pinned key (unknown-key)', async () => {
    await expectRefused(good, 'wrong-arch', [keys.publicKeyPem], { arch: 'x64' });
    await expectRefused(good, 'unknown-key', []);
  });

  it('refuses a symlink entry even when signed for', async () => {
    const file = await variant((es) => es);
    // Rewrite one payload header's type to a symlink, fixing its checksum, straight in the tar.
    const { gunzipSync } = await import('node:zlib');
    const tar = gunzipSync(await readFile(file));
    const header = entryHeader({ path: 'payload/bin/node', size: 200_000, mode: 0o755, mtime: Date.parse('2026-11-01T00:00:00Z') / 1000 });
    const at = tar.indexOf(header);
    expect(at).toBeGreaterThan(0);
    tar.write('2', at + 156, 'ascii');
    tar.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[at + i]!;
    tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'ascii');
    await writeFile(file, gzipSync(tar));
    await expectRefused(file, 'unreadable');
  });

  it('rejects pinned keys that are private or not ed25519 as a configuration error', async () => {
    await expect(verifyBundle(good, [keys.privateKeyPem])).rejects.toThrow(/private key/);
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await expect(verifyBundle(good, [rsa])).rejects.toThrow(/not an ed25519 public key/);
  });
});
