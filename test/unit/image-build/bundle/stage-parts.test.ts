// The parts of staging that need no registry: which repository files a box gets (import closure)
// and how production node_modules are pruned and checked for native addons.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appFiles } from '../../../../image-build/bundle/app-files.ts';
import { nativeReport, prune } from '../../../../image-build/bundle/modules.ts';
import { REPO_ROOT } from '../../../../image-build/bundle/release-info.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-stage-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(files: Record<string, string | Buffer>): Promise<void> {
  for (const [p, body] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), body);
  }
}

function gitCommit(): void {
  if (!existsSync(join(dir, '.git'))) execFileSync('git', ['init', '-q'], { cwd: dir });
  execFileSync('git', ['add', '-A'], { cwd: dir });
  execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', 'c'], { cwd: dir });
}

/** The first 20 bytes of an ELF file for the given machine (183 = aarch64, 62 = x86-64). */
const elf = (machine: number) => {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b.writeUInt16LE(machine, 18);
  return b;
};

describe('appFiles', () => {
  it('ships the box code of this repository and nothing of fleet/, test/ or bench/', async () => {
    const { files, notes } = await appFiles(REPO_ROOT);
    for (const f of ['shared/cli/main.ts', 'appliance/appliance.ts', 'package.json', 'package-lock.json', 'scripts/mbox', 'image-build/bundle/verify.ts']) expect(files).toContain(f);
    expect(files.filter((f) => /^(fleet|test|bench)\//.test(f))).toEqual([]);
    expect(notes.join('\n')).toMatch(/fleet\/fleet\.ts \(lazily imported by shared\/cli\/main\.ts\) left out/);
  });

  it('follows imports out of the seed dirs, drops lazy commands that need the fleet, keeps type-only imports harmless', async () => {
    await put({
      'package.json': '{}',
      'package-lock.json': '{}',
      'scripts/mbox': '#!/bin/sh\n',
      'shared/cli/main.ts': "import { x } from '../../util.ts';\nexport async function f() { await import('../../tools/fleet-cmd.ts'); await import('../../tools/box-cmd.ts'); }\n",
      'appliance/appliance.ts': "import type { T } from '../fleet/types.ts';\nimport '../models/load.ts';\nexport {};\n",
      'util.ts': 'export const x = 1;\n',
      'tools/fleet-cmd.ts': "import { y } from './fleet-only.ts';\n",
      'tools/fleet-only.ts': "export { z as y } from '../fleet/server.ts';\n",
      'tools/box-cmd.ts': "import { x } from '../util.ts';\n",
      'fleet/server.ts': 'export const z = 1;\n',
      'fleet/types.ts': 'export type T = 1;\n',
      'models/load.ts': 'export {};\n',
      'models/net.onnx': Buffer.alloc(10),
      'models/train.py': 'print(1)\n',
      'test/x.test.ts': '',
    });
    gitCommit();
    const { files, notes, source } = await appFiles(dir);
    expect(files).toEqual(['appliance/appliance.ts', 'models/load.ts', 'models/net.onnx', 'package-lock.json', 'package.json', 'scripts/mbox', 'shared/cli/main.ts', 'tools/box-cmd.ts', 'util.ts']);
    expect(notes).toEqual(['tools/fleet-cmd.ts (lazily imported by shared/cli/main.ts) left out: it needs code that is not shipped to the box']);
    expect(source.commit).toMatch(/^[0-9a-f]{40}$/);
  });

  it('takes the files from HEAD: uncommitted edits are named and not shipped, a committed import of a missing file is refused', async () => {
    await put({ 'package.json': '{}', 'package-lock.json': '{}', 'scripts/mbox': '', 'shared/cli/main.ts': "import '../../appliance/appliance.ts';\n", 'appliance/appliance.ts': 'export const v = 1;\n' });
    gitCommit();
    // Work in progress: a new import of a file that is not even added yet.
    await put({ 'appliance/appliance.ts': "import './update/new.ts';\nexport const v = 2;\n", 'appliance/update/new.ts': 'export {};\n' });
    const { files, notes, source } = await appFiles(dir);
    expect(files).not.toContain('appliance/update/new.ts');
    expect(source.read('appliance/appliance.ts').toString()).toBe('export const v = 1;\n');
    expect(notes.join('\n')).toMatch(/uncommitted changes are not in the release \(built from [0-9a-f]{12}\): appliance\/appliance\.ts/);
    await rm(join(dir, 'appliance/update'), { recursive: true });
    gitCommit();
    await expect(appFiles(dir)).rejects.toThrow(/the release would not load: appliance\/appliance\.ts imports appliance\/update\/new\.ts/);
  });

  it('refuses when the box entry point itself needs fleet code', async () => {
    await put({ 'package.json': '{}', 'package-lock.json': '{}', 'scripts/mbox': '', 'shared/cli/main.ts': "import '../appliance/appliance.ts';\n", 'appliance/appliance.ts': "import { a } from '../shared/x.ts';\n", 'shared/x.ts': "export { a } from '../fleet/a.ts';\n", 'fleet/a.ts': 'export const a = 1;\n' });
    gitCommit();
    await expect(appFiles(dir)).rejects.toThrow(/(shared\/cli\/main|appliance\/appliance)\.ts statically imports code that is not shipped/);
  });
});

describe('production node_modules', () => {
  it('prunes .bin and other platforms\' prebuilds, and reports native addons with or without a binary for the box', async () => {
    const nm = join(dir, 'node_modules');
    await put({
      'node_modules/classic-level/package.json': JSON.stringify({ name: 'classic-level', scripts: { install: 'node-gyp-build' } }),
      'node_modules/classic-level/binding.gyp': '{}',
      'node_modules/classic-level/prebuilds/linux-arm64/classic-level.armv8.node': elf(183),
      'node_modules/classic-level/prebuilds/linux-x64/classic-level.node': elf(62),
      'node_modules/classic-level/prebuilds/darwin-x64+arm64/classic-level.node': Buffer.alloc(4000),
      'node_modules/classic-level/prebuilds/win32-x64/classic-level.node': Buffer.alloc(4000),
      'node_modules/onnxruntime-node/package.json': JSON.stringify({ name: 'onnxruntime-node', scripts: { postinstall: 'node ./script/install' } }),
      'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node': elf(183),
      'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node': elf(62),
      'node_modules/onnxruntime-node/bin/napi-v6/darwin/arm64/onnxruntime_binding.node': Buffer.alloc(100),
      'node_modules/@scope/needs-gyp/package.json': JSON.stringify({ name: '@scope/needs-gyp', gypfile: true }),
      'node_modules/@scope/needs-gyp/node_modules/inner/package.json': JSON.stringify({ name: 'inner', scripts: { postinstall: 'echo thanks' } }),
      'node_modules/plain/package.json': JSON.stringify({ name: 'plain' }),
    });
    await mkdir(join(nm, '.bin'));
    await symlink('../plain/x.js', join(nm, '.bin', 'plain'));
    const removed = await prune(nm, 'arm64');
    expect(removed).toBe(4000 + 4000 + 64 + 64 + 100);
    expect(existsSync(join(nm, '.bin'))).toBe(false);
    expect(existsSync(join(nm, 'classic-level/prebuilds/linux-arm64/classic-level.armv8.node'))).toBe(true);
    expect(existsSync(join(nm, 'classic-level/prebuilds/linux-x64'))).toBe(false);
    expect(existsSync(join(nm, 'onnxruntime-node/bin/napi-v6/linux/x64'))).toBe(false);
    expect(existsSync(join(nm, 'onnxruntime-node/bin/napi-v6/darwin'))).toBe(false);
    const report = await nativeReport(nm, 'arm64');
    expect(report.native.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: '@scope/needs-gyp', status: 'needs-compile', binaries: [] },
      { name: 'classic-level', status: 'prebuilt', binaries: ['classic-level/prebuilds/linux-arm64/classic-level.armv8.node'] },
      { name: 'onnxruntime-node', status: 'prebuilt', binaries: ['onnxruntime-node/bin/napi-v6/linux/arm64/onnxruntime_binding.node'] },
    ]);
    expect(report.skippedScripts).toEqual(['inner: echo thanks']);
  });
});
