// The fleet under test as a child process (`mbox fleet`), so its RSS and CPU are its own, plus the
// few HTTPS calls the bench makes to it (health, /metrics, the device list, one device).
import { execFileSync } from 'node:child_process';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { earlyExitError, spawnPeer, waitUntil, type PeerProcess } from '../../test/helpers/ports.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
export const NODE_BIN = join(ROOT, '.node', 'bin', 'node');
const CLI = join(ROOT, 'shared', 'cli', 'main.ts');

export interface FleetChildOptions {
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  adminToken: string;
  caPem: string;
  /** mqtts:// URL of an external broker; embedded aedes when absent. */
  broker?: string;
  /** Write a V8 CPU profile of the fleet into this dir (node --cpu-prof). */
  cpuProfDir?: string;
  logLevel?: string;
}

export interface FleetChild {
  pid: number;
  peer: PeerProcess;
  argv: string[];
  get<T>(path: string): Promise<{ status: number; body: T }>;
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

export async function startFleetChild(o: FleetChildOptions): Promise<FleetChild> {
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [];
  const args = [
    ...nodeArgs,
    CLI,
    'fleet',
    '--data-dir', o.dataDir,
    '--http-port', String(o.httpPort),
    '--mqtt-port', String(o.mqttPort),
    '--admin-token', o.adminToken,
    '--log-level', o.logLevel ?? 'warn',
    ...(o.broker ? ['--broker', o.broker] : []),
  ];
  const peer = spawnPeer(NODE_BIN, args, { keepLines: 60 });
  const pid = peer.child.pid;
  if (pid === undefined) throw new Error(`could not start the fleet: ${peer.outputTail()}`);
  const get = <T>(path: string): Promise<{ status: number; body: T }> => httpsGet<T>(o.httpPort, path, o.adminToken, o.caPem);
  const child: FleetChild = {
    pid,
    peer,
    argv: ['node', ...args.map((a) => (a === o.adminToken ? '<token>' : a.startsWith(ROOT) ? a.slice(ROOT.length + 1) : a))],
    get,
    async metrics() {
      const res = await httpsRequest(o.httpPort, '/metrics', o.adminToken, o.caPem);
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
      return parsePrometheus(res.text);
    },
    // The fleet stops its listeners, flushes the registry and exits; with --cpu-prof that exit writes
    // the profile, so give it time before the SIGKILL.
    stop: () => peer.stop(60_000),
  };
  try {
    await waitUntil(
      async () => {
        const r = await get<{ broker?: string }>('/healthz');
        return r.status === 200 && r.body.broker === 'connected';
      },
      120_000,
      'the fleet to answer /healthz with its broker connected',
      () => earlyExitError('fleet', peer),
    );
  } catch (err) {
    await peer.stop(5000);
    throw err;
  }
  return child;
}

function httpsRequest(port: number, path: string, token: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', ca, headers: { authorization: `Bearer ${token}` }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function httpsGet<T>(port: number, path: string, token: string, ca: string): Promise<{ status: number; body: T }> {
  const res = await httpsRequest(port, path, token, ca);
  return { status: res.status, body: JSON.parse(res.text) as T };
}

/** `name{labels} value` lines into a map keyed by the whole `name{labels}` text. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp > 0) out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** ESTABLISHED connections on the broker's port, its own side only (ss filters in the kernel). */
export function brokerConnections(port: number): number {
  try {
    const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return out.split('\n').filter((l) => l.trim() !== '').length;
  } catch {
    return -1;
  }
}
