import { createHash, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildBundle, type BuildOptions } from '../../../../image-build/bundle/build.ts';
import { checkManifest } from '../../../../image-build/bundle/checks.ts';
import { BUNDLE_FORMAT, canonicalJson, keyIdOf, MANIFEST_ENTRY, SIGNATURE_ENTRY, BundleError } from '../../../../shared/update/manifest.ts';
import { keyPair, makeStage, manifestOf, readEntries } from './tamper.ts';

let dir: string;
const keys = keyPair();
const STAGE_FILES = {
  'package.json': '{"name":"m-box","version":"1.2.3"}\n',
  'shared/cli/main.ts': 'console.log("hi");\n',
  'bin/node': Buffer.alloc(3000, 0x7f),
  'empty.txt': '',
  [`node_modules/${'long-package-name-'.repeat(4)}/dist/${'nested-'.repeat(10)}/index.js`]: 'module.exports = 1;\n',
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-build-'));
  await makeStage(join(dir, 'stage'), STAGE_FILES, ['bin/node']);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const opts = (over: Partial<BuildOptions> = {}): BuildOptions => ({
  stageDir: join(dir, 'stage'),
  out: join(dir, 'out.mbx'),
  version: '1.2.3',
  arch: 'arm64',
  nodeVersion: '24.21.0',
  createdAt: '2026-11-01T10:00:00Z',
  dataSchema: 3,
  privateKeyPem: keys.privateKeyPem,
  ...over,
});

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('buildBundle', () => {
  it('writes manifest, signature and payload in order, with every file hashed and its mode', async () => {
    const r = await buildBundle(opts());
    const bytes = await readFile(join(dir, 'out.mbx'));
    expect(r.size).toBe(bytes.length);
    expect(r.sha256).toBe(sha(bytes));
    const entries = await readEntries(join(dir, 'out.mbx'));
    const paths = Object.keys(STAGE_FILES).sort();
    expect(entries.map((e) => e.path)).toEqual([MANIFEST_ENTRY, SIGNATURE_ENTRY, ...paths.map((p) => `payload/${p}`)]);
    const m = manifestOf(entries);
    expect(m).toEqual(r.manifest);
    expect(m).toMatchObject({ format: BUNDLE_FORMAT, version: '1.2.3', arch: 'arm64', nodeVersion: '24.21.0', createdAt: '2026-11-01T10:00:00Z', dataSchema: 3 });
    for (const f of m.files) {
      const body = (STAGE_FILES as Record<string, string | Buffer>)[f.path]!;
      expect(f.size).toBe(Buffer.byteLength(body));
      expect(f.sha256).toBe(sha(body));
      expect(f.mode).toBe(f.path === 'bin/node' ? 0o755 : 0o644);
    }
    // Entry metadata carries nothing from the build host: creation time, root owner, modes as listed.
    for (const e of entries) expect(e.mtime).toBe(Date.parse('2026-11-01T10:00:00Z') / 1000);
    expect(execFileSync('tar', ['--numeric-owner', '-tvzf', join(dir, 'out.mbx')], { encoding: 'utf8' })).not.toMatch(/ (?!0\/0)\d+\/\d+ /);
  });

  it('signs the exact canonical-JSON bytes of manifest.json with the given key', async () => {
    await buildBundle(opts());
    const entries = await readEntries(join(dir, 'out.mbx'));
    const manifestBytes = entries[0]!.body;
    expect(manifestBytes.toString()).toBe(canonicalJson(JSON.parse(manifestBytes.toString())));
    expect(manifestBytes.toString()).not.toMatch(/\s/); // no whitespace: the bytes are canonical
    const sig = JSON.parse(entries[1]!.body.toString()) as { algorithm: string; keyId: string; signature: string };
    expect(sig.algorithm).toBe('ed25519');
    expect(sig.keyId).toBe(keyIdOf(keys.publicKeyPem));
    expect(verify(null, manifestBytes, keys.publicKeyPem, Buffer.from(sig.signature, 'base64'))).toBe(true);
  });

  it('is reproducible: same stage and createdAt give identical bytes, whatever the files\' times and umask', async () => {
    const a = await buildBundle(opts({ out: join(dir, 'a.mbx') }));
    // Touch every file and rebuild: the file times must not leak into the bundle.
    for (const p of Object.keys(STAGE_FILES)) await utimes(join(dir, 'stage', p), new Date(), new Date(2001, 1, 1));
    await chmod(join(dir, 'stage', 'bin/node'), 0o700); // any exec bit → 0755
    const b = await buildBundle(opts({ out: join(dir, 'b.mbx') }));
    expect(b.sha256).toBe(a.sha256);
    expect((await readFile(join(dir, 'a.mbx'))).equals(await readFile(join(dir, 'b.mbx')))).toBe(true);
    const c = await buildBundle(opts({ out: join(dir, 'c.mbx'), createdAt: '2026-11-02T10:00:00Z' }));
    expect(c.sha256).not.toBe(a.sha256);
    await writeFile(join(dir, 'stage', 'empty.txt'), 'x');
    const d = await buildBundle(opts({ out: join(dir, 'd.mbx') }));
    expect(d.sha256).not.toBe(a.sha256);
  });

  it('refuses stages holding links or nothing, bad versions and non-ed25519 keys, leaving no output', async () => {
    await symlink('package.json', join(dir, 'stage', 'link'));
    await expect(buildBundle(opts())).rejects.toThrow(/symbolic link at link/);
    await rm(join(dir, 'stage', 'link'));
    await expect(buildBundle(opts({ version: 'v1' }))).rejects.toMatchObject({ code: 'manifest-invalid' });
    await expect(buildBundle(opts({ createdAt: 'yesterday' }))).rejects.toThrow(/createdAt/);
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await expect(buildBundle(opts({ privateKeyPem: rsa }))).rejects.toThrow(/not ed25519/);
    await expect(buildBundle(opts({ privateKeyPem: keys.publicKeyPem }))).rejects.toThrow(/not a private key/);
    await rm(join(dir, 'stage'), { recursive: true });
    await mkdir(join(dir, 'stage', 'only-a-dir'), { recursive: true });
    await expect(buildBundle(opts())).rejects.toThrow(/holds no files/);
    expect(execFileSync('ls', ['-A', dir], { encoding: 'utf8' }).trim()).toBe('stage');
  });
});

describe('checkManifest', () => {
  const good = { format: BUNDLE_FORMAT, version: '1.0.0', arch: 'arm64', nodeVersion: '24.21.0', createdAt: '2026-11-01T00:00:00Z', dataSchema: 1, files: [] as unknown[] };
  const file = (path: string) => ({ path, size: 0, sha256: sha(''), mode: 0o644 });

  it('accepts sorted safe paths and refuses unsafe, unsorted, duplicate or clashing ones', () => {
    expect(checkManifest({ ...good, files: [file('a'), file('a-b'), file('b/c')] }).files).toHaveLength(3);
    for (const files of [[file('../x')], [file('/abs')], [file('a/./b')], [file('a\\b')], [file('b'), file('a')], [file('a'), file('a')], [file('a'), file('a/b')], [file(`${'n'.repeat(256)}/x`)]]) {
      const err = (() => {
        try {
          checkManifest({ ...good, files });
        } catch (e) {
          return e;
        }
      })();
      expect(err, JSON.stringify(files.map((f) => f.path))).toBeInstanceOf(BundleError);
      expect((err as BundleError).code).toBe('manifest-invalid');
    }
    expect(() => checkManifest({ ...good, extra: 1 })).toThrow(/manifest/);
    expect(() => checkManifest({ ...good, files: [{ ...file('a'), mode: 0o777 }] })).toThrow(/manifest/);
    expect(() => checkManifest({ ...good, createdAt: 'soon' })).toThrow(/not a date/);
  });
});
