// `stageRelease`: lays out what goes into a box's slot — the app files the box runs, production
// node_modules for its architecture and the Node runtime as bin/node — in a fresh directory that
// `buildBundle` then signs. App files come from the checkout's HEAD commit (see source-tree.ts), as
// do package.json and the lockfile npm installs from. Downloads and installs are cached in `cacheDir`.
import { chmod, copyFile, cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import { appFiles } from './app-files.ts';
import { listStage } from './build.ts';
import { npmEnv, productionModules, type NativePackage } from './modules.ts';
import { nodeRuntime } from './node-runtime.ts';
import { REPO_ROOT } from './release-info.ts';

export interface StageOptions {
  arch: 'arm64' | 'x64';
  nodeVersion: string;
  outDir: string;
  cacheDir: string;
  log?: Logger;
}

/** What a stage is made of, for the bench and the build's log. */
export interface StageDetail {
  files: number;
  bytes: number;
  parts: { app: { files: number; bytes: number }; nodeModules: { files: number; bytes: number }; runtime: { files: number; bytes: number } };
  native: NativePackage[];
  notes: string[];
  /** The commit the app files come from (undefined outside a git checkout). */
  commit: string | undefined;
  /** Whether node_modules and the Node runtime came from the cache (no registry traffic). */
  cached: { modules: boolean; runtime: boolean };
}

async function ensureEmpty(dir: string): Promise<void> {
  try {
    if ((await readdir(dir)).length > 0) throw new Error(`stage directory ${dir} is not empty`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true });
}

async function copyAs(from: string, to: string, mode: 0o755 | 0o644): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await copyFile(from, to);
  await chmod(to, mode);
}

export async function stageReleaseDetailed(opts: StageOptions & { root?: string }): Promise<StageDetail> {
  const root = opts.root ?? REPO_ROOT;
  const out = resolve(opts.outDir);
  const cacheDir = resolve(opts.cacheDir);
  await ensureEmpty(out);
  await mkdir(cacheDir, { recursive: true });

  const app = await appFiles(root);
  for (const note of app.notes) opts.log?.info(note);
  let appBytes = 0;
  for (const f of app.files) {
    const body = app.source.read(f);
    await mkdir(dirname(join(out, f)), { recursive: true });
    await writeFile(join(out, f), body, { mode: 0o644 });
    await chmod(join(out, f), app.source.executable(f) ? 0o755 : 0o644);
    appBytes += body.length;
  }

  const modules = await productionModules({ packageJson: app.source.read('package.json'), lockfile: app.source.read('package-lock.json'), arch: opts.arch, cacheDir, log: opts.log });
  for (const n of modules.native) {
    if (n.status === 'needs-compile') opts.log?.warn({ package: n.name }, `native addon ${n.name} ships no linux-${opts.arch} binary: it would need compiling for the box`);
  }
  await cp(modules.dir, join(out, 'node_modules'), { recursive: true, verbatimSymlinks: true });

  const runtime = await nodeRuntime({ arch: opts.arch, nodeVersion: opts.nodeVersion, cacheDir, env: await npmEnv(cacheDir), log: opts.log });
  await copyAs(runtime.node, join(out, 'bin', 'node'), 0o755);
  // Node is MIT-licensed: its notice travels with every copy we ship.
  await copyAs(runtime.license, join(out, 'bin', 'node.LICENSE'), 0o644);

  const all = await listStage(out);
  const sum = (pred: (p: string) => boolean) => {
    const sel = all.filter((f) => pred(f.path));
    return { files: sel.length, bytes: sel.reduce((a, f) => a + f.size, 0) };
  };
  const detail: StageDetail = {
    files: all.length,
    bytes: all.reduce((a, f) => a + f.size, 0),
    parts: { app: { files: app.files.length, bytes: appBytes }, nodeModules: sum((p) => p.startsWith('node_modules/')), runtime: sum((p) => p.startsWith('bin/')) },
    native: modules.native,
    notes: app.notes,
    commit: app.source.commit,
    cached: { modules: modules.cached, runtime: runtime.cached },
  };
  opts.log?.info({ files: detail.files, bytes: detail.bytes, parts: detail.parts }, 'release staged');
  return detail;
}

export async function stageRelease(opts: StageOptions): Promise<{ files: number; bytes: number }> {
  const d = await stageReleaseDetailed(opts);
  return { files: d.files, bytes: d.bytes };
}
