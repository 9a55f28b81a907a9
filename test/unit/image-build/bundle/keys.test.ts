import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initKeys, pinnedKeys, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE } from '../../../../image-build/bundle/keys.ts';
import { releaseCreatedAt } from '../../../../image-build/bundle/release-info.ts';
import { keyIdOf } from '../../../../shared/update/manifest.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('initKeys', () => {
  it('writes an ed25519 pair: PKCS#8 private key 0600, SPKI public key 0644, and its key id', async () => {
    const k = await initKeys(join(dir, 'keys'));
    expect(k.privateKeyPath).toBe(join(dir, 'keys', PRIVATE_KEY_FILE));
    expect(k.publicKeyPath).toBe(join(dir, 'keys', PUBLIC_KEY_FILE));
    const priv = await readFile(k.privateKeyPath, 'utf8');
    const pub = await readFile(k.publicKeyPath, 'utf8');
    expect(priv).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(pub).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect((await stat(k.privateKeyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(k.publicKeyPath)).mode & 0o777).toBe(0o644);
    expect(createPrivateKey(priv).asymmetricKeyType).toBe('ed25519');
    expect(k.keyId).toBe(keyIdOf(pub));
    expect(keyIdOf(createPublicKey(priv))).toBe(k.keyId);
    const sig = sign(null, Buffer.from('m'), priv);
    expect(verify(null, Buffer.from('m'), pub, sig)).toBe(true);
    expect((await readdir(join(dir, 'keys'))).sort()).toEqual([PRIVATE_KEY_FILE, PUBLIC_KEY_FILE].sort()); // no temp files
  });

  it('refuses to overwrite either key, leaving them as they were', async () => {
    const k = await initKeys(dir);
    const before = await readFile(k.privateKeyPath, 'utf8');
    await expect(initKeys(dir)).rejects.toThrow(/refusing to overwrite/);
    expect(await readFile(k.privateKeyPath, 'utf8')).toBe(before);
    const other = join(dir, 'other');
    await initKeys(other);
    await rm(join(other, PRIVATE_KEY_FILE));
    await expect(initKeys(other)).rejects.toThrow(/refusing to overwrite .*pub/);
  });

  it('pins public keys by key id and rejects a private key given as a pin', async () => {
    const a = await initKeys(join(dir, 'a'));
    const b = await initKeys(join(dir, 'b'));
    const pins = pinnedKeys([await readFile(a.publicKeyPath, 'utf8'), await readFile(b.publicKeyPath, 'utf8')]);
    expect([...pins.keys()].sort()).toEqual([a.keyId, b.keyId].sort());
    const priv = await readFile(a.privateKeyPath, 'utf8');
    expect(() => pinnedKeys([priv])).toThrow(/private key/);
  });
});

describe('releaseCreatedAt', () => {
  it('uses SOURCE_DATE_EPOCH, else the last commit, never the clock', async () => {
    expect(releaseCreatedAt(dir, { SOURCE_DATE_EPOCH: '1700000000' })).toBe('2023-11-14T22:13:20Z');
    expect(() => releaseCreatedAt(dir, { SOURCE_DATE_EPOCH: 'now' })).toThrow(/SOURCE_DATE_EPOCH/);
    const { execFileSync } = await import('node:child_process');
    const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, env: { ...process.env, GIT_COMMITTER_DATE: '2020-01-02T03:04:05Z', GIT_AUTHOR_DATE: '2020-01-02T03:04:05Z' } });
    expect(() => releaseCreatedAt(dir, {})).toThrow(/git/);
    git('init', '-q');
    await writeFile(join(dir, 'f'), 'x');
    git('add', 'f');
    git('-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', 'c');
    expect(releaseCreatedAt(dir, {})).toBe('2020-01-02T03:04:05Z');
  });
});
