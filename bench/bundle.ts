// `npm run bench bundle`: stage and build the real release bundle for the box (arm64 by default),
// then measure what an update costs: bundle size (= the download: an update fetches the whole
// bundle, there are no deltas), files, raw bytes and ratio, stage/build/verify/extract times and the
// peak memory of verify and extract (child processes, so the figure is theirs alone). References:
// `tar czf` of the same stage (and with --refs all: gzip -9, zstd -19, xz -6), where the bytes come
// from (app, node_modules, Node runtime), and which node_modules the box's code never loads.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { createReadStream } from 'node:fs';
import { appFiles, packageImports } from '../image-build/bundle/app-files.ts';
import { buildBundle, listStage } from '../image-build/bundle/build.ts';
import { initKeys } from '../image-build/bundle/keys.ts';
import { REPO_ROOT, releaseCreatedAt, releaseNodeVersion, releaseVersion } from '../image-build/bundle/release-info.ts';
import { stageReleaseDetailed } from '../image-build/bundle/stage.ts';
import { formatText, writeResults, type Table } from './lib/table.ts';

const MB = 1e6;
const sec = (ms: number) => ms / 1000;

interface Args {
  arch: 'arm64' | 'x64';
  cacheDir: string;
  workDir: string;
  refs: 'default' | 'all';
  cold: boolean;
}

function parse(argv: string[]): Args {
  const { values } = parseArgs({ args: argv, options: { arch: { type: 'string', default: 'arm64' }, 'cache-dir': { type: 'string' }, 'work-dir': { type: 'string' }, refs: { type: 'string', default: 'default' }, cold: { type: 'boolean', default: false } }, strict: true });
  if (values.arch !== 'arm64' && values.arch !== 'x64') throw new Error('--arch must be arm64 or x64');
  if (values.refs !== 'default' && values.refs !== 'all') throw new Error('--refs must be default or all');
  return { arch: values.arch, cacheDir: resolve(values['cache-dir'] ?? join(REPO_ROOT, '.cache', 'bundle')), workDir: resolve(values['work-dir'] ?? join(REPO_ROOT, 'bench', 'work', 'bundle')), refs: values.refs, cold: values.cold };
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
}

/** Runs verify or extract in a fresh Node so its peak RSS is its own. */
function childRun(op: 'verify' | 'extract', bundle: string, pubkey: string, dest: string): { ms: number; maxRssMB: number } {
  const script = `
    import { readFileSync } from 'node:fs';
    import { verifyBundle, extractBundle } from ${JSON.stringify(join(REPO_ROOT, 'image-build/bundle/index.ts'))};
    const keys = [readFileSync(${JSON.stringify(pubkey)}, 'utf8')];
    const t = performance.now();
    ${op === 'verify' ? `await verifyBundle(${JSON.stringify(bundle)}, keys);` : `await extractBundle(${JSON.stringify(bundle)}, ${JSON.stringify(dest)}, keys);`}
    console.log(JSON.stringify({ ms: performance.now() - t, maxRssMB: process.resourceUsage().maxRSS / 1024 }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${op} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; maxRssMB: number };
}

/** `tar` of the stage through an external compressor: bytes and seconds. */
function tarRef(stage: string, out: string, compressor: string[] | null): { bytes: number; ms: number } {
  const t = performance.now();
  const args = ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', stage, '-cf', out, ...(compressor ? ['-I', compressor.join(' ')] : ['-z']), '.'];
  execFileSync('tar', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GZIP: '' } });
  return { bytes: statSync(out).size, ms: performance.now() - t };
}

/** gzip -9 bytes of a set of files, streamed one after the other (what they add to the bundle). */
async function gzipBytes(files: string[]): Promise<number> {
  const gz = createGzip({ level: 9, memLevel: 9 });
  let bytes = 0;
  gz.on('data', (c: Buffer) => (bytes += c.length));
  const ended = new Promise((r) => gz.on('end', r));
  for (const f of files) for await (const chunk of createReadStream(f)) if (!gz.write(chunk)) await new Promise((r) => gz.once('drain', r));
  gz.end();
  await ended;
  return bytes;
}

/** Installed packages reachable from the box's own imports through package.json dependencies. */
async function reachedPackages(stage: string, roots: Set<string>): Promise<{ reached: Set<string>; missing: string[] }> {
  const reached = new Set<string>();
  const missing: string[] = [];
  const resolvePkg = (from: string, name: string): string | undefined => {
    for (let dir = from; ; dir = resolve(dir, '..')) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return candidate;
      if (dir === stage || dir === '/') return undefined;
    }
  };
  const queue = [...roots].map((name) => ({ from: stage, name }));
  while (queue.length) {
    const { from, name } = queue.pop()!;
    const dir = resolvePkg(from, name);
    if (!dir) {
      if (from === stage) missing.push(name);
      continue;
    }
    if (reached.has(dir)) continue;
    reached.add(dir);
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) for (const dep of Object.keys(meta[field] ?? {})) queue.push({ from: dir, name: dep });
  }
  return { reached, missing };
}

async function packageSizes(stage: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const f of await listStage(join(stage, 'node_modules'))) {
    // The innermost package directory owns the file.
    const parts = f.path.split('/');
    let end = 0;
    for (let i = 0; i < parts.length; i++) {
      if (i === 0 || parts[i - 1] === 'node_modules') end = parts[i]!.startsWith('@') ? i + 2 : i + 1;
    }
    const dir = join(stage, 'node_modules', parts.slice(0, end).join('/'));
    sizes.set(dir, (sizes.get(dir) ?? 0) + f.size);
  }
  return sizes;
}

export async function runBundleCli(argv: string[]): Promise<boolean> {
  const args = parse(argv);
  const startedAt = new Date();
  await rm(args.workDir, { recursive: true, force: true });
  await mkdir(args.workDir, { recursive: true });
  if (args.cold) for (const e of await readdir(args.cacheDir).catch(() => [] as string[])) if (e !== 'npm') await rm(join(args.cacheDir, e), { recursive: true, force: true });
  const stage = join(args.workDir, 'stage');
  const keys = await initKeys(join(args.workDir, 'keys'));
  const nodeVersion = releaseNodeVersion();
  console.error(`staging the ${args.arch} release (cache ${relative(process.cwd(), args.cacheDir)})…`);
  const [detail, stageMs] = await timed(() => stageReleaseDetailed({ arch: args.arch, nodeVersion, outDir: stage, cacheDir: args.cacheDir }));
  const bundle = join(args.workDir, `mbox-${releaseVersion()}-${args.arch}.mbx`);
  console.error('building…');
  const privateKeyPem = await readFile(keys.privateKeyPath, 'utf8');
  const [built, buildMs] = await timed(() => buildBundle({ stageDir: stage, out: bundle, version: releaseVersion(), arch: args.arch, nodeVersion, createdAt: releaseCreatedAt(), dataSchema: 1, privateKeyPem }));
  console.error('verifying and extracting…');
  const verify = childRun('verify', bundle, keys.publicKeyPath, '');
  const extract = childRun('extract', bundle, keys.publicKeyPath, join(args.workDir, 'slot'));
  console.error('reference compressions…');
  const refs: { name: string; bytes: number; ms: number }[] = [{ name: 'tar czf (gzip -6)', ...tarRef(stage, join(args.workDir, 'ref.tar.gz'), null) }];
  if (args.refs === 'all') {
    refs.push({ name: 'tar | gzip -9', ...tarRef(stage, join(args.workDir, 'ref9.tar.gz'), ['gzip', '-9']) });
    for (const [name, cmd] of [['tar | zstd -19', ['zstd', '-19', '-T0']], ['tar | xz -6', ['xz', '-6', '-T0']]] as const) {
      if (spawnSync('which', [cmd[0]]).status === 0) refs.push({ name, ...tarRef(stage, join(args.workDir, `ref.${cmd[0]}`), [...cmd]) });
    }
  }
  const files = await listStage(stage);
  const part = (p: (path: string) => boolean) => files.filter((f) => p(f.path)).map((f) => f.abs);
  const parts = [
    { name: 'Node runtime (bin/)', files: part((p) => p.startsWith('bin/')) },
    { name: 'node_modules (production)', files: part((p) => p.startsWith('node_modules/')) },
    { name: 'app (appliance/, shared/, …)', files: part((p) => !p.startsWith('bin/') && !p.startsWith('node_modules/')) },
  ];
  const partRows: { name: string; files: number; rawMB: number; gzipMB: number }[] = [];
  for (const p of parts) {
    const raw = (await Promise.all(p.files.map((f) => stat(f)))).reduce((a, s) => a + s.size, 0);
    partRows.push({ name: p.name, files: p.files.length, rawMB: raw / MB, gzipMB: (await gzipBytes(p.files)) / MB });
  }
  const app = await appFiles(REPO_ROOT);
  const roots = await packageImports(app.source, app.files);
  const { reached, missing } = await reachedPackages(stage, roots);
  const sizes = await packageSizes(stage);
  const unreached = [...sizes].filter(([dir]) => !reached.has(dir)).sort((a, b) => b[1] - a[1]);
  const reachedBytes = [...sizes].filter(([dir]) => reached.has(dir)).reduce((a, [, s]) => a + s, 0);
  const unreachedBytes = unreached.reduce((a, [, s]) => a + s, 0);
  const pkgName = (dir: string) => relative(join(stage, 'node_modules'), dir);

  const raw = detail.bytes;
  const tables: Table[] = [
    {
      title: `Update bundle, ${args.arch} (${releaseVersion()}, Node ${nodeVersion})`,
      columns: [{ header: 'bundle MB', digits: 2 }, { header: 'files', digits: 0 }, { header: 'raw MB', digits: 1 }, { header: 'ratio', digits: 2 }, { header: 'download per update MB', digits: 2 }, { header: 'stage s', digits: 1 }, { header: 'build s', digits: 1 }, { header: 'verify s', digits: 2 }, { header: 'verify peak RSS MB', digits: 0 }, { header: 'extract s', digits: 2 }, { header: 'extract peak RSS MB', digits: 0 }],
      rows: [[built.size / MB, detail.files, raw / MB, raw / built.size, built.size / MB, sec(stageMs), sec(buildMs), sec(verify.ms), verify.maxRssMB, sec(extract.ms), extract.maxRssMB]],
      notes: [
        'download per update = the whole bundle: the box fetches the .mbx as it is (resumable, hash-checked); there are no delta updates.',
        `app files from commit ${detail.commit?.slice(0, 12) ?? '(not a git checkout)'}; stage: ${detail.cached.modules ? 'node_modules from the cache' : 'npm ci from the registry'}, ${detail.cached.runtime ? 'Node runtime from the cache' : `node-linux-${args.arch} fetched from the registry`}; build: hash every file, sign, tar + gzip -9 in one stream; verify/extract: separate Node processes, streaming (extract fsyncs every file and directory).`,
        `native addons: ${detail.native.map((n) => `${n.name} ${n.status}`).join(', ') || 'none'}.`,
        `sha256 ${built.sha256}`,
      ],
    },
    {
      title: 'Reference: the same stage compressed by standard tools',
      columns: [{ header: 'method' }, { header: 'MB', digits: 2 }, { header: 'ratio', digits: 2 }, { header: 'vs bundle', digits: 3 }, { header: 'seconds', digits: 1 }],
      rows: [['m-box bundle (own tar, gzip -9)', built.size / MB, raw / built.size, 1, sec(buildMs)], ...refs.map((r) => [r.name, r.bytes / MB, raw / r.bytes, r.bytes / built.size, sec(r.ms)])],
      notes: ['Reference archives use GNU tar with sorted names and zeroed owners/times; seconds are wall clock on this host (other work on it skews them).'],
    },
    {
      title: 'Where the bytes come from',
      columns: [{ header: 'part' }, { header: 'files', digits: 0 }, { header: 'raw MB', digits: 1 }, { header: 'gzip -9 MB', digits: 2 }, { header: 'share of download', digits: 0 }],
      rows: partRows.map((p) => [p.name, p.files, p.rawMB, p.gzipMB, `${Math.round((100 * p.gzipMB) / partRows.reduce((a, q) => a + q.gzipMB, 0))} %`]),
      notes: [
        `node_modules reached from the box's imports (through package.json dependencies): ${reached.size} packages, ${(reachedBytes / MB).toFixed(1)} MB raw; never reached: ${unreached.length} packages, ${(unreachedBytes / MB).toFixed(1)} MB raw — largest: ${unreached.slice(0, 8).map(([d, s]) => `${pkgName(d)} ${(s / MB).toFixed(1)}`).join(', ')}. A static estimate (dynamic requires are not followed): the fleet's own dependencies ship because package.json has one dependency list.`,
        ...(missing.length ? [`imported by shipped code but not a production dependency: ${missing.join(', ')} (build-time tooling reached through \`mbox bundle build\`; never loaded by the box).`] : []),
        ...detail.notes.map((n) => `staging: ${n}`),
      ],
    },
  ];
  for (const t of tables) console.log(`\n${formatText(t)}`);
  const data = { startedAt: startedAt.toISOString(), arch: args.arch, version: releaseVersion(), nodeVersion, bundle: { bytes: built.size, sha256: built.sha256, files: detail.files, rawBytes: raw }, parts: detail.parts, timesMs: { stage: stageMs, build: buildMs, verify: verify.ms, extract: extract.ms }, peakRssMB: { verify: verify.maxRssMB, extract: extract.maxRssMB }, cached: detail.cached, refs, partsCompressed: partRows, native: detail.native, unreachedPackages: unreached.map(([d, s]) => ({ name: pkgName(d), bytes: s })), host: { cpus: (await import('node:os')).cpus().length, load: (await import('node:os')).loadavg() } };
  const out = await writeResults('bundle', data, tables, { when: startedAt, preamble: [`Host: ${data.host.cpus} CPUs, Node ${process.version}; 1-minute load ${data.host.load[0]?.toFixed(2)} at the start.`] });
  console.log(`\nresults: ${relative(process.cwd(), out.jsonPath)}, ${relative(process.cwd(), out.markdownPath)}`);
  await rm(args.workDir, { recursive: true, force: true });
  return true;
}
