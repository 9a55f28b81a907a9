// Production node_modules for the box's architecture, installed from the lockfile on the build
// host: `npm ci --omit=dev --cpu=<arch> --os=linux --libc=glibc --ignore-scripts`. Scripts stay off
// because they would run (and compile) for the build host, not the box: every native addon must ship
// a prebuilt binary for linux-<arch>, and `nativeReport` says which do and which would need a
// compiler. Prebuilds for other platforms are pruned (the box downloads every byte).
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../../shared/log.ts';

const run = promisify(execFile);
/** Bumped when pruning or the install flags change, so a cached install is not reused. */
const RECIPE = 'modules/2';
const ELF_MACHINE: Record<'arm64' | 'x64', number> = { arm64: 183, x64: 62 };

export interface NativePackage {
  name: string;
  /** prebuilt: a linux-<arch> binary ships; needs-compile: none does (the box could not load it). */
  status: 'prebuilt' | 'needs-compile';
  binaries: string[];
}

export interface ModulesResult {
  /** The node_modules directory to copy into the stage. */
  dir: string;
  native: NativePackage[];
  /** Packages whose install scripts were skipped (for the record). */
  skippedScripts: string[];
  prunedBytes: number;
  cached: boolean;
}

/** npm's global config holds the registry CA here; npm run under another Node would lose it. */
export async function npmEnv(cacheDir: string): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!env.npm_config_globalconfig) {
    const { stdout } = await run('npm', ['config', 'get', 'globalconfig'], { env: process.env });
    env.npm_config_globalconfig = stdout.trim();
  }
  env.PATH = `${dirname(process.execPath)}:${env.PATH ?? ''}`;
  env.npm_config_cache = join(cacheDir, 'npm');
  env.npm_config_onnxruntime_node_install = 'skip'; // its script fetches CUDA builds (STACK.md)
  delete env.npm_config_nodedir;
  return env;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  return total;
}

/** Every installed package directory (nested node_modules included). */
async function packageDirs(nodeModules: string): Promise<string[]> {
  const out: string[] = [];
  const scan = async (nm: string): Promise<void> => {
    if (!existsSync(nm)) return;
    for (const e of await readdir(nm, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith('.')) continue;
      const dirs = e.name.startsWith('@') ? (await readdir(join(nm, e.name), { withFileTypes: true })).filter((s) => s.isDirectory()).map((s) => join(nm, e.name, s.name)) : [join(nm, e.name)];
      for (const d of dirs) {
        if (existsSync(join(d, 'package.json'))) out.push(d);
        await scan(join(d, 'node_modules'));
      }
    }
  };
  await scan(nodeModules);
  return out;
}

/** Removes `.bin` link farms and other platforms' prebuilt binaries; returns the bytes removed. */
export async function prune(nodeModules: string, arch: 'arm64' | 'x64'): Promise<number> {
  let removed = 0;
  const drop = async (p: string): Promise<void> => {
    removed += (await stat(p)).isDirectory() ? await dirBytes(p) : (await stat(p)).size;
    await rm(p, { recursive: true, force: true });
  };
  for (const e of await readdir(nodeModules, { withFileTypes: true, recursive: true })) {
    if (e.name === '.bin' && e.isDirectory()) await rm(join(e.parentPath, e.name), { recursive: true, force: true });
  }
  for (const pkg of await packageDirs(nodeModules)) {
    // node-gyp-build layout: prebuilds/<platform>-<arch>[+<arch>…]/
    const prebuilds = join(pkg, 'prebuilds');
    if (existsSync(prebuilds)) {
      for (const d of await readdir(prebuilds)) {
        const [platform, archs = ''] = d.split('-', 2);
        if (platform !== 'linux' || !archs.split('+').includes(arch)) await drop(join(prebuilds, d));
      }
    }
    // onnxruntime-node layout: bin/napi-v*/<platform>/<arch>/
    const bin = join(pkg, 'bin');
    if (existsSync(bin)) {
      for (const napi of (await readdir(bin)).filter((n) => n.startsWith('napi-v'))) {
        for (const platform of await readdir(join(bin, napi))) {
          if (platform !== 'linux') await drop(join(bin, napi, platform));
          else for (const a of await readdir(join(bin, napi, platform))) if (a !== arch) await drop(join(bin, napi, platform, a));
        }
      }
    }
  }
  return removed;
}

async function elfMachine(file: string): Promise<number | undefined> {
  const fh = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(20), 0, 20, 0);
    if (bytesRead < 20 || buffer.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return buffer.readUInt16LE(18);
  } finally {
    await fh.close();
  }
}

/** Native addons and the prebuilt binaries that would load on linux-<arch>. */
export async function nativeReport(nodeModules: string, arch: 'arm64' | 'x64'): Promise<{ native: NativePackage[]; skippedScripts: string[] }> {
  const native: NativePackage[] = [];
  const skippedScripts: string[] = [];
  for (const pkg of await packageDirs(nodeModules)) {
    const meta = JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8')) as { name?: string; gypfile?: boolean; scripts?: Record<string, string> };
    const name = meta.name ?? relative(nodeModules, pkg);
    const scripts = ['preinstall', 'install', 'postinstall'].map((s) => meta.scripts?.[s]).filter((s): s is string => !!s);
    const binaries: string[] = [];
    let addons = 0;
    for (const e of await readdir(pkg, { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || !e.name.endsWith('.node') || relative(pkg, e.parentPath).split('/').includes('node_modules')) continue;
      addons++;
      const abs = join(e.parentPath, e.name);
      if ((await elfMachine(abs)) === ELF_MACHINE[arch]) binaries.push(relative(nodeModules, abs));
    }
    const isNative = meta.gypfile === true || existsSync(join(pkg, 'binding.gyp')) || scripts.some((s) => /node-gyp|prebuild-install|node-pre-gyp|cmake-js/.test(s)) || addons > 0;
    if (isNative) native.push({ name, status: binaries.length ? 'prebuilt' : 'needs-compile', binaries });
    else if (scripts.length) skippedScripts.push(`${name}: ${scripts.join(' && ')}`);
  }
  return { native, skippedScripts };
}

/** `packageJson` and `lockfile` are the release's (from its commit), not necessarily the working tree's. */
export async function productionModules(opts: { packageJson: Buffer; lockfile: Buffer; arch: 'arm64' | 'x64'; cacheDir: string; log?: Logger }): Promise<ModulesResult> {
  const pkg = opts.packageJson;
  const lock = opts.lockfile;
  const key = createHash('sha256').update(RECIPE).update(opts.arch).update(pkg).update(lock).digest('hex').slice(0, 16);
  const dir = join(opts.cacheDir, `modules-${opts.arch}-${key}`);
  const reportFile = `${dir}.json`;
  if (existsSync(join(dir, 'node_modules')) && existsSync(reportFile)) {
    const report = JSON.parse(await readFile(reportFile, 'utf8')) as Omit<ModulesResult, 'dir' | 'cached'>;
    opts.log?.info({ dir }, 'production node_modules from the cache');
    return { ...report, dir: join(dir, 'node_modules'), cached: true };
  }
  const work = `${dir}.tmp`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await writeFile(join(work, 'package.json'), pkg);
  await writeFile(join(work, 'package-lock.json'), lock);
  const args = ['ci', '--omit=dev', '--ignore-scripts', `--cpu=${opts.arch}`, '--os=linux', '--libc=glibc', '--no-audit', '--no-fund', '--loglevel=error'];
  opts.log?.info({ arch: opts.arch, args }, 'installing production node_modules');
  try {
    await run('npm', args, { cwd: work, env: await npmEnv(opts.cacheDir), maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
  const nodeModules = join(work, 'node_modules');
  const prunedBytes = await prune(nodeModules, opts.arch);
  const { native, skippedScripts } = await nativeReport(nodeModules, opts.arch);
  await rm(dir, { recursive: true, force: true });
  await rename(work, dir);
  const report = { native, skippedScripts, prunedBytes };
  await writeFile(reportFile, JSON.stringify(report, null, 2));
  return { ...report, dir: join(dir, 'node_modules'), cached: false };
}
