// The operator's path through the real CLI (scripts/mbox): keys init → bundle build --stage-dir →
// bundle verify; tampered copies exit 1 naming the refusal's code, usage mistakes exit 2.
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyPair, makeStage, resign, rewrite } from '../../unit/image-build/bundle/tamper.ts';

const MBOX = resolve(import.meta.dirname, '../../../scripts/mbox');
let dir: string;

function mbox(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(MBOX, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', fail);
    child.once('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-bundle-cli-'));
  await makeStage(
    join(dir, 'stage'),
    {
      'bin/node': Buffer.alloc(100_000, 5),
      'package.json': '{"name":"m-box","version":"3.1.4"}\n',
      'shared/cli/main.ts': 'console.log(1);\n',
      [`node_modules/${'x'.repeat(70)}/${'y'.repeat(70)}/index.js`]: 'module.exports = {};\n',
    },
    ['bin/node'],
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mbox keys / mbox bundle', () => {
  let pub: string;
  let bundle: string;

  it('keys init prints the key paths and id, and refuses to run twice', async () => {
    const r = await mbox(['keys', 'init', '--dir', 'keys']);
    expect(r.code, r.stderr).toBe(0);
    const id = /key id:\s+(\S+)/.exec(r.stdout)?.[1];
    expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(r.stdout).toContain(join(dir, 'keys', 'bundle-signing.key.pem'));
    pub = join(dir, 'keys', 'bundle-signing.pub.pem');
    expect(r.stdout).toContain(pub);
    const again = await mbox(['keys', 'init', '--dir', 'keys']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/refusing to overwrite/);
  });

  it('bundle build --stage-dir signs the stage and prints version, key id, files, size and sha256', async () => {
    const r = await mbox(['bundle', 'build', '--key', 'keys/bundle-signing.key.pem', '--out', 'r.mbx', '--stage-dir', 'stage', '--version', '3.1.4', '--data-schema', '2'], { SOURCE_DATE_EPOCH: '1790000000' });
    expect(r.code, r.stderr).toBe(0);
    bundle = join(dir, 'r.mbx');
    const size = (await readFile(bundle)).length;
    expect(r.stdout).toMatch(/version:\s+3\.1\.4 \(arm64, node \d+\.\d+\.\d+, data schema 2, created 2026-09-21T\d\d:\d\d:\d\dZ\)/);
    expect(r.stdout).toMatch(/files:\s+4 /);
    expect(r.stdout).toContain(`size:       ${size} bytes`);
    const { createHash } = await import('node:crypto');
    expect(r.stdout).toContain(createHash('sha256').update(await readFile(bundle)).digest('hex'));
    // The same inputs again: the same bytes.
    const again = await mbox(['bundle', 'build', '--key', 'keys/bundle-signing.key.pem', '--out', 'r2.mbx', '--stage-dir', 'stage', '--version', '3.1.4', '--data-schema', '2'], { SOURCE_DATE_EPOCH: '1790000000' });
    expect(again.code, again.stderr).toBe(0);
    expect((await readFile(join(dir, 'r2.mbx'))).equals(await readFile(bundle))).toBe(true);
  });

  it('bundle verify accepts the bundle (exit 0, summary)', async () => {
    const r = await mbox(['bundle', 'verify', bundle, '--pubkey', pub, '--arch', 'arm64']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^bundle ok: 3\.1\.4 for arm64 .*4 files/);
  });

  it('refuses tampered bundles with exit 1 and the code', async () => {
    const other = keyPair();
    await writeFile(join(dir, 'other.pub.pem'), other.publicKeyPem);
    const variants: [string, string, () => Promise<void>][] = [
      ['byte.mbx', 'file-mismatch', () => rewrite(bundle, join(dir, 'byte.mbx'), (es) => void (es.find((e) => e.path === 'payload/bin/node')!.body[99_999]! ^= 0x01))],
      ['manifest.mbx', 'signature-invalid', () => rewrite(bundle, join(dir, 'manifest.mbx'), (es) => void (es[0]!.body = Buffer.from(es[0]!.body.toString().replace('3.1.4', '3.1.5'))))],
      ['sig.mbx', 'signature-invalid', () => rewrite(bundle, join(dir, 'sig.mbx'), (es) => void (es[1]!.body = Buffer.from(es[1]!.body.toString().replace(/"signature":"(.)/, (_m, c: string) => `"signature":"${c === 'A' ? 'B' : 'A'}`))))],
      ['key.mbx', 'unknown-key', () => rewrite(bundle, join(dir, 'key.mbx'), (es) => resign(es, other.privateKeyPem, () => undefined))],
      ['cut.mbx', 'unreadable', async () => {
        await copyFile(bundle, join(dir, 'cut.mbx'));
        await truncate(join(dir, 'cut.mbx'), 200);
      }],
    ];
    for (const [name, code, make] of variants) {
      await make();
      const r = await mbox(['bundle', 'verify', name, '--pubkey', pub]);
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^bundle refused \\(${code}\\): `));
      expect(r.stdout).toBe('');
    }
    // Pinned to the wrong key only: the good bundle is refused too.
    const wrong = await mbox(['bundle', 'verify', bundle, '--pubkey', 'other.pub.pem']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^bundle refused \(unknown-key\)/);
    // Two pins (rotation): either may have signed.
    expect((await mbox(['bundle', 'verify', bundle, '--pubkey', 'other.pub.pem', '--pubkey', pub])).code).toBe(0);
    const arch = await mbox(['bundle', 'verify', bundle, '--pubkey', pub, '--arch', 'x64']);
    expect(arch.code).toBe(1);
    expect(arch.stderr).toMatch(/^bundle refused \(wrong-arch\)/);
  });

  it('exits 2 on usage mistakes', async () => {
    for (const args of [
      ['bundle'],
      ['bundle', 'verify', 'r.mbx'],
      ['bundle', 'verify', '--pubkey', 'keys/bundle-signing.pub.pem'],
      ['bundle', 'verify', 'missing.mbx', '--pubkey', 'keys/bundle-signing.pub.pem'],
      ['bundle', 'verify', 'r.mbx', '--pubkey', 'keys/bundle-signing.key.pem'],
      ['bundle', 'verify', 'r.mbx', '--pubkey', 'no-such.pem'],
      ['bundle', 'build', '--out', 'x.mbx'],
      ['bundle', 'build', '--key', 'keys/bundle-signing.pub.pem', '--out', 'x.mbx', '--stage-dir', 'stage'],
      ['bundle', 'build', '--key', 'keys/bundle-signing.key.pem', '--out', 'x.mbx', '--arch', 'riscv'],
      ['bundle', 'build', '--key', 'keys/bundle-signing.key.pem', '--out', 'x.mbx', '--stage-dir', 'no-such-dir'],
      ['bundle', 'sign'],
      ['keys', 'init'],
      ['keys', 'init', '--dir', 'k2', '--force'],
    ]) {
      const r = await mbox(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    }
  });
});
