import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../../../image-build/bundle/build.ts';
import { extractBundle } from '../../../../image-build/bundle/extract.ts';
import { keyPair, makeStage } from './tamper.ts';

const keys = keyPair();
const FILES = {
  'bin/node': Buffer.alloc(5 << 20, 3), // larger than one read chunk: written in pieces
  'appliance/appliance.ts': 'export {};\n',
  'node_modules/classic-level/prebuilds/linux-arm64/classic-level.armv8.node': Buffer.alloc(1000, 9),
  [`node_modules/${'deep/'.repeat(30)}x.js`]: 'deep',
  'scripts/mbox': '#!/bin/sh\n',
  'empty': '',
};
let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-extract-'));
  await makeStage(join(dir, 'stage'), FILES, ['bin/node', 'scripts/mbox']);
  bundle = join(dir, 'b.mbx');
  await buildBundle({ stageDir: join(dir, 'stage'), out: bundle, version: '1.0.0', arch: 'arm64', nodeVersion: '24.21.0', createdAt: '2026-11-01T00:00:00Z', dataSchema: 1, privateKeyPem: keys.privateKeyPem });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('extractBundle', () => {
  it('extracts every file with its content and mode 0755/0644 (dirs 0755), whatever the umask', async () => {
    const dest = join(dir, 'slots', 'a');
    await mkdir(join(dir, 'slots'));
    const old = process.umask(0o077);
    try {
      const m = await extractBundle(bundle, dest, [keys.publicKeyPem], { arch: 'arm64' });
      expect(m.files).toHaveLength(Object.keys(FILES).length);
    } finally {
      process.umask(old);
    }
    for (const [path, body] of Object.entries(FILES)) {
      expect((await readFile(join(dest, path))).equals(Buffer.from(body)), path).toBe(true);
      const mode = (await stat(join(dest, path))).mode & 0o777;
      expect(mode, path).toBe(path === 'bin/node' || path === 'scripts/mbox' ? 0o755 : 0o644);
    }
    for (const d of ['', 'bin', 'node_modules/classic-level/prebuilds/linux-arm64']) expect((await stat(join(dest, d))).mode & 0o777, d || '.').toBe(0o755);
    expect(await readdir(join(dir, 'slots'))).toEqual(['a']); // no .partial left
  });

  it('fills an existing empty directory and clears a partial left by a crash', async () => {
    const parent = join(dir, 'p2');
    await mkdir(join(parent, 'b'), { recursive: true });
    await mkdir(join(parent, '.b.partial', 'half'), { recursive: true });
    await writeFile(join(parent, '.b.partial', 'half', 'file'), 'from a crash');
    await extractBundle(bundle, join(parent, 'b'), [keys.publicKeyPem]);
    expect(await readdir(parent)).toEqual(['b']);
    expect((await readdir(join(parent, 'b'))).sort()).toEqual(['appliance', 'bin', 'empty', 'node_modules', 'scripts']);
  });

  it('refuses a destination that is not empty or not a directory, touching nothing', async () => {
    const parent = join(dir, 'p3');
    await mkdir(join(parent, 'full'), { recursive: true });
    await writeFile(join(parent, 'full', 'keep'), 'mine');
    await writeFile(join(parent, 'file'), 'x');
    await expect(extractBundle(bundle, join(parent, 'full'), [keys.publicKeyPem])).rejects.toThrow(/not empty/);
    await expect(extractBundle(bundle, join(parent, 'file'), [keys.publicKeyPem])).rejects.toThrow(/not a directory/);
    expect((await readdir(parent)).sort()).toEqual(['file', 'full']);
    expect(await readFile(join(parent, 'full', 'keep'), 'utf8')).toBe('mine');
  });
});
