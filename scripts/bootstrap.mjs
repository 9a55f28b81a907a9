#!/usr/bin/env node
// Provisions the project's pinned Node and its npm dependencies, then runs a command with them.
// Plain JavaScript with no dependencies: it runs under whatever Node the machine has (Node 20 here)
// so `npm start` / `npm test` work on a fresh clone without any manual step.
//
// usage: node scripts/bootstrap.mjs <script.ts|module> [args...]
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const wantedNode = pkg.engines.node.replace(/[^0-9.]/g, '');
const nodeDir = join(root, '.node');
const nodeBin = join(nodeDir, 'bin', 'node');
const arch = process.arch === 'arm64' ? 'arm64' : 'x64';

function log(msg) {
  process.stderr.write(`[bootstrap] ${msg}\n`);
}

function run(cmd, args, env = process.env) {
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env });
}

function currentNodeVersion() {
  if (!existsSync(nodeBin)) return null;
  try {
    return execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
  } catch {
    return null;
  }
}

// npm derives its global config path from the running node's prefix; with our own node first on
// PATH it would look in .node/etc/npmrc and lose the machine's registry CA. Pin the original.
const globalconfig = execFileSync('npm', ['config', 'get', 'globalconfig'], { encoding: 'utf8' }).trim();
const npmEnv = {
  ...process.env,
  PATH: `${join(nodeDir, 'bin')}:${process.env.PATH}`,
  npm_config_globalconfig: globalconfig,
  npm_config_nodedir: nodeDir,
};

function ensureNode() {
  if (currentNodeVersion() === wantedNode) return;
  log(`installing Node ${wantedNode} (${arch}) into .node/ from the npm registry`);
  const tmp = mkdtempSync(join(tmpdir(), 'mbox-node-'));
  try {
    run('npm', ['pack', '--silent', `node-linux-${arch}@${wantedNode}`, '--pack-destination', tmp]);
    const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    rmSync(nodeDir, { recursive: true, force: true });
    mkdirSync(nodeDir, { recursive: true });
    run('tar', ['xzf', join(tmp, tgz), '-C', nodeDir, '--strip-components=1']);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (currentNodeVersion() !== wantedNode) throw new Error(`Node ${wantedNode} did not install into ${nodeDir}`);
}

function ensureModules() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.mbox-install-stamp');
  const want = createHash('sha256')
    .update(existsSync(lock) ? readFileSync(lock) : readFileSync(join(root, 'package.json')))
    .update(wantedNode)
    .digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  log('installing npm dependencies with Node ' + wantedNode);
  run('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'], npmEnv);
  writeFileSync(stamp, want);
}

ensureNode();
ensureModules();

const [target, ...args] = process.argv.slice(2);
if (!target) process.exit(0);
const child = spawn(nodeBin, [target, ...args], { cwd: process.cwd(), stdio: 'inherit', env: npmEnv });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(signal ? 128 : (code ?? 1)));
