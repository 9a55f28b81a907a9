// The updater's proving ground: a real slot root whose slot A is a copy of this repository's app,
// the real launcher (image-build/launcher/mbox-launch under dash) under a small supervisor loop
// that plays systemd's Restart=always, a real fleet (test/helpers/fleet.ts) that the box enrols
// with, and real signed bundles built from a staged copy of the app with another version.
//
// Not copied into slots: Node itself (slot A links .node/bin/node; a bundle's bin/node is a
// two-line sh script that execs it) and node_modules (one symlink at the root of the slot tree,
// which Node's module resolution reaches from both slots by walking up).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, createReadStream, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildBundle } from '../../../image-build/bundle/build.ts';
import { initKeys } from '../../../image-build/bundle/keys.ts';
import type { UpdateInfo } from '../../../appliance/agent/update/updater.ts';
import type { DeviceUpdate } from '../../../shared/fleet/api.ts';
import { topics } from '../../../shared/fleet/topics.ts';
import type { UpdateOffer } from '../../../shared/update/messages.ts';
import { startTestFleet, type TestFleet } from '../../helpers/fleet.ts';
import { freePort, waitUntil } from '../../helpers/ports.ts';
import { uploadBundle } from './rollout-sim.ts';

export const REPO = resolve(import.meta.dirname, '../../..');
export const NODE = join(REPO, '.node/bin/node');
export const LAUNCHER = join(REPO, 'image-build/launcher/mbox-launch');
const DASH = existsSync('/usr/bin/dash') ? '/usr/bin/dash' : '/bin/sh';
/** What a slot needs of the repository to run `mbox appliance`. */
const APP_DIRS = ['appliance', 'shared', 'image-build/bundle'];
export const HOST_ARCH = process.arch === 'arm64' ? 'arm64' : 'x64';

/** Copies the app (APP_DIRS + package.json with `version`) into `dest`. */
export function copyApp(dest: string, version: string): void {
  for (const d of APP_DIRS) cpSync(join(REPO, d), join(dest, d), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dest, 'package.json'), `${JSON.stringify({ ...pkg, version }, null, 2)}\n`);
}

/** <work>/root with slots/a (the app as `version`), current → slots/a, boot/ and the node_modules link. */
export function makeSlotRoot(work: string, version: string): string {
  const root = join(work, 'root');
  const a = join(root, 'slots/a');
  mkdirSync(join(a, 'bin'), { recursive: true });
  mkdirSync(join(root, 'boot'));
  symlinkSync(NODE, join(a, 'bin/node'));
  copyApp(a, version);
  symlinkSync('slots/a', join(root, 'current'));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  return root;
}

export interface Release {
  version: string;
  file: string;
  sha256: string;
  size: number;
}

export interface ReleaseOptions {
  /** Files to add or replace in the staged app: text, or a function of the repository's text. */
  patches?: Record<string, string | ((original: string) => string)>;
  dataSchema?: number;
  /** Random bytes in an extra file, so a download takes long enough to be cut. */
  padBytes?: number;
  privateKeyPem: string;
}

/** A signed bundle of the app as `version` (a real buildBundle over a staged copy). */
export async function buildRelease(work: string, version: string, opts: ReleaseOptions): Promise<Release> {
  const stage = join(work, `stage-${version}-${randomBytes(3).toString('hex')}`);
  copyApp(stage, version);
  mkdirSync(join(stage, 'bin'));
  writeFileSync(join(stage, 'bin/node'), `#!/bin/sh\nexec '${NODE}' "$@"\n`, { mode: 0o755 });
  for (const [path, patch] of Object.entries(opts.patches ?? {})) {
    const abs = join(stage, path);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileSync(abs, typeof patch === 'string' ? patch : patch(readFileSync(join(REPO, path), 'utf8')));
  }
  if (opts.padBytes) writeFileSync(join(stage, 'pad.bin'), randomBytes(opts.padBytes));
  const file = join(work, `mbox-${version}-${randomBytes(3).toString('hex')}.mbx`);
  const built = await buildBundle({
    stageDir: stage,
    out: file,
    version,
    arch: HOST_ARCH,
    nodeVersion: process.versions.node,
    createdAt: '2026-11-01T00:00:00Z',
    dataSchema: opts.dataSchema ?? 1,
    privateKeyPem: opts.privateKeyPem,
  });
  await rm(stage, { recursive: true, force: true });
  return { version, file, sha256: built.sha256, size: built.size };
}

export interface Run {
  n: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Restart=always in miniature: runs the launcher, and again whenever it ends, until stopped. */
export class Supervisor {
  readonly runs: Run[] = [];
  private child: ChildProcess | undefined;
  private stopped = true;
  private current: Run | undefined;
  private readonly args: string[];
  private readonly logFile: string;
  private readonly restartDelayMs: number;

  constructor(root: string, configFile: string, logFile: string, restartDelayMs = 100) {
    this.args = [LAUNCHER, root, 'appliance', '--config', configFile];
    this.logFile = logFile;
    this.restartDelayMs = restartDelayMs;
  }

  start(): void {
    this.stopped = false;
    this.spawnOne();
  }

  private spawnOne(): void {
    if (this.stopped) return;
    const run: Run = { n: this.runs.length + 1, code: null, signal: null, output: '' };
    this.runs.push(run);
    this.current = run;
    // A bare environment, as systemd gives (plus the dcmtk/Nagle note from STACK.md).
    const child = spawn(DASH, this.args, { env: { PATH: '/usr/bin:/bin', TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const take = (d: Buffer): void => {
      const s = d.toString();
      run.output += s;
      appendFileSync(this.logFile, s.split('\n').filter(Boolean).map((l) => `[run ${run.n}] ${l}\n`).join(''));
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    child.on('exit', (code, signal) => {
      run.code = code;
      run.signal = signal;
      if (this.child === child) this.child = undefined;
      if (!this.stopped) setTimeout(() => this.spawnOne(), this.restartDelayMs);
    });
  }

  /** The running process (Node, after the launcher's exec). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get latest(): Run | undefined {
    return this.current;
  }

  /** Kills the running process (the supervisor starts the next one). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
}

export interface Lab {
  work: string;
  root: string;
  dataDir: string;
  configFile: string;
  logFile: string;
  fleet: TestFleet;
  group: string;
  keys: { privateKeyPem: string; publicKeyPath: string; privateKeyPath: string };
  dicomPort: number;
  httpPort: number;
  box: Supervisor;
  deviceId: string;
  destroy(): Promise<void>;
}

export interface LabOptions {
  healthWindowMs?: number;
  fleetFlags?: string[];
  /** Extra box config keys. */
  config?: Record<string, unknown>;
}

export async function boxGet<T>(lab: Pick<Lab, 'httpPort'>, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${lab.httpPort}${path}`, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

export const updateInfo = (lab: Pick<Lab, 'httpPort'>): Promise<UpdateInfo> => boxGet<UpdateInfo>(lab, '/api/update');

/** A fleet, a slot root with `version` in slot A, and the box running under the supervisor, enrolled and online. */
export async function startLab(version: string, opts: LabOptions = {}): Promise<Lab> {
  const work = await mkdtemp(join(tmpdir(), 'mbox-upd-'));
  const keys = await initKeys(join(work, 'keys'));
  const privateKeyPem = readFileSync(keys.privateKeyPath, 'utf8');
  const fleet = await startTestFleet(['--release-pubkeys', keys.publicKeyPath, '--rollout-health-timeout-ms', '300000', ...(opts.fleetFlags ?? [])]);
  const group = 'upd';
  const token = await fleet.api.post<{ token: string }>('/api/tokens/enrolment', { group, expires: '1h' });
  if (token.status !== 201) throw new Error(`token: HTTP ${token.status}`);
  const root = makeSlotRoot(work, version);
  const dataDir = join(work, 'data');
  const [dicomPort, httpPort] = [await freePort(), await freePort()];
  const configFile = join(work, 'box.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      dataDir,
      dicomHost: '127.0.0.1',
      dicomPort,
      httpPort,
      fleetUrl: fleet.baseUrl,
      enrolToken: token.body.token,
      updatePubkeys: [keys.publicKeyPath],
      updateHealthWindowMs: opts.healthWindowMs ?? 3000,
      telemetryIntervalMs: 1000,
      diskMinFreeBytes: 0,
      diskHighWaterPercent: 100,
      quietTimeMs: 500,
      logLevel: 'info',
      ...opts.config,
    }),
  );
  const logFile = join(work, 'box.log');
  const box = new Supervisor(root, configFile, logFile);
  box.start();
  const lab: Lab = {
    work,
    root,
    dataDir,
    configFile,
    logFile,
    fleet,
    group,
    keys: { privateKeyPem, publicKeyPath: keys.publicKeyPath, privateKeyPath: keys.privateKeyPath },
    dicomPort,
    httpPort,
    box,
    deviceId: '',
    async destroy() {
      await box.stop();
      await fleet.destroy();
      if (process.env.MBOX_KEEP_UPDATE_LAB) process.stderr.write(`update lab kept in ${work}\n`);
      else await rm(work, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(async () => (await boxGet<{ connected: boolean }>(lab, '/api/agent')).connected, 30_000, 'box enrolled and online', () => exitedEarly(box));
    lab.deviceId = (await boxGet<{ deviceId: string }>(lab, '/api/agent')).deviceId;
  } catch (err) {
    process.stderr.write(tail(lab));
    await lab.destroy();
    throw err;
  }
  return lab;
}

function exitedEarly(box: Supervisor): Error | null {
  return box.runs.length > 3 ? new Error(`the box keeps exiting:\n${box.runs.map((r) => `run ${r.n}: ${r.code ?? r.signal} ${r.output.slice(-1500)}`).join('\n')}`) : null;
}

/** The end of the box's log, for a failing test's message. */
export function tail(lab: Pick<Lab, 'logFile'>, chars = 6000): string {
  try {
    return readFileSync(lab.logFile, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

/** Waits for `check` against the box's /api/update, with the box's log in the error. */
export async function waitBox(lab: Lab, what: string, check: (i: UpdateInfo) => boolean, timeoutMs = 40_000): Promise<UpdateInfo> {
  let last: UpdateInfo | undefined;
  try {
    await waitUntil(async () => check((last = await updateInfo(lab))), timeoutMs, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast /api/update: ${JSON.stringify(last)}\n--- box log ---\n${tail(lab)}`);
  }
  return last!;
}

/** The fleet's view of the box's update (GET /api/devices/:id/update). */
export async function fleetView(lab: Lab): Promise<DeviceUpdate> {
  const r = await lab.fleet.api.get<DeviceUpdate>(`/api/devices/${lab.deviceId}/update`);
  if (r.status !== 200) throw new Error(`device update: HTTP ${r.status}`);
  return r.body;
}

export async function waitFleet(lab: Lab, what: string, check: (u: DeviceUpdate) => boolean, timeoutMs = 40_000): Promise<DeviceUpdate> {
  let last: DeviceUpdate | undefined;
  try {
    await waitUntil(async () => check((last = await fleetView(lab))), timeoutMs, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast fleet view: ${JSON.stringify(last)}\n--- box log ---\n${tail(lab)}`);
  }
  return last!;
}

/** Uploads the release to the fleet and rolls it out to the lab's group in one wave. */
export async function rollOut(lab: Lab, rel: Release): Promise<string> {
  const up = await uploadBundle(lab.fleet, rel.file, lab.fleet.api.token!);
  if (up.status !== 201 && up.status !== 200) throw new Error(`upload ${rel.version}: HTTP ${up.status} ${JSON.stringify(up.body)}`);
  const r = await lab.fleet.api.post<{ id: string }>('/api/rollouts', { version: rel.version, group: lab.group, waves: [{ count: 1, successThreshold: 1, failureThreshold: 1 }] });
  if (r.status !== 201) throw new Error(`rollout ${rel.version}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/**
 * Publishes (or with null, withdraws) the retained offer as the fleet would, through the fleet's
 * own MQTT connection — for what the rollout engine will not do: offer a tampered bundle, or a
 * release the fleet remembers failed on the box. (A second connection as the fleet's identity
 * would take over the fleet's session, so this goes through the fleet's own bus.)
 */
export async function publishOffer(lab: Pick<Lab, 'fleet' | 'deviceId'>, offer: UpdateOffer | null): Promise<void> {
  await lab.fleet.bus.publish(topics.updateOffer(lab.deviceId), offer ?? undefined, { retain: true, qos: 1 });
}

export const pause = sleep;

/**
 * Serves bundle files over HTTPS with the fleet's server certificate and mutual TLS (client
 * certificates from the fleet CA), with Range — a stand-in for the fleet's download route when a
 * test must serve bytes the fleet would never store (tampered bundles).
 */
export class BundleServer {
  private server: Server | undefined;
  private readonly files = new Map<string, string>();
  /** Each request: path, Range header, the client certificate's CN. */
  readonly requests: Array<{ path: string; range: string | undefined; cn: string | undefined }> = [];
  port = 0;

  async start(fleet: TestFleet): Promise<void> {
    const creds = await fleet.pki.serverCredentials(['127.0.0.1', 'localhost']);
    this.server = createServer({ key: creds.keyPem, cert: creds.certPem, ca: fleet.pki.caCertPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      this.requests.push({ path, range: req.headers.range, cn: typeof peer.subject?.CN === 'string' ? peer.subject.CN : undefined });
      const file = this.files.get(path);
      if (!file) return void res.writeHead(404).end();
      const size = statSync(file).size;
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      if (start >= size && size > 0) return void res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      if (start > 0) res.writeHead(206, { 'content-range': `bytes ${start}-${size - 1}/${size}`, 'content-length': size - start, 'accept-ranges': 'bytes' });
      else res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
      createReadStream(file, { start }).pipe(res);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Serves `file` at /<name> and returns its URL. */
  serve(name: string, file: string): string {
    this.files.set(`/${name}`, file);
    return `https://127.0.0.1:${this.port}/${name}`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
}

/** SHA-256 and size of a file, as an offer carries them. */
export async function digestOf(file: string): Promise<{ sha256: string; size: number }> {
  const bytes = await readFile(file);
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}
