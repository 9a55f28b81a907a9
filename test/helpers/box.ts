// The appliance under test: in-process for behaviour tests, or as a real `mbox appliance` child
// process when a test must kill it or measure its memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAppliance, type RunningAppliance } from '../../appliance/appliance.ts';
import { ApplianceConfigSchema } from '../../shared/config/appliance.ts';
import { loadConfig } from '../../shared/config/load.ts';
import { createLogger } from '../../shared/log.ts';
import { ROOT } from './data.ts';
import { freePort, waitUntil } from './ports.ts';

export interface TestBox extends RunningAppliance {
  dataDir: string;
  get<T = unknown>(path: string): Promise<{ status: number; body: T }>;
}

async function getJson<T>(httpPort: number, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`);
  const text = await res.text();
  return { status: res.status, body: (text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text) as T };
}

/** Starts a box in this process on free ports with a fresh data dir; flags as for `mbox appliance`. */
export async function startBox(flags: string[] = [], dataDir = mkdtempSync(join(tmpdir(), 'mbox-box-'))): Promise<TestBox> {
  const config = loadConfig(ApplianceConfigSchema, {
    argv: ['--data-dir', dataDir, '--dicom-port', '0', '--http-port', '0', '--dicom-host', '127.0.0.1', '--disk-min-free-bytes', '0', '--disk-high-water-percent', '100', '--log-level', 'silent', ...flags],
  });
  const box = await startAppliance(config, createLogger(config.logLevel));
  return { ...box, dataDir, get: (path) => getJson(box.httpPort, path) };
}

export interface BoxProcess {
  dicomPort: number;
  httpPort: number;
  dataDir: string;
  child: ChildProcess;
  get<T = unknown>(path: string): Promise<{ status: number; body: T }>;
  /** Peak resident memory so far (VmHWM), in bytes. */
  peakRss(): number;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `scripts/mbox appliance` as a child process and waits until /healthz answers. */
export async function spawnBox(dataDir: string, flags: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<BoxProcess> {
  const [dicomPort, httpPort] = [await freePort(), await freePort()];
  const child = spawn(
    join(ROOT, 'scripts/mbox'),
    ['appliance', '--data-dir', dataDir, '--dicom-port', String(dicomPort), '--http-port', String(httpPort), '--dicom-host', '127.0.0.1', '--log-level', 'warn', '--disk-min-free-bytes', '0', ...flags],
    { stdio: ['ignore', 'ignore', 'pipe'], env },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = () => (child.exitCode !== null ? new Error(`mbox appliance exited ${child.exitCode}: ${stderr}`) : null);
  await waitUntil(async () => (await getJson(httpPort, '/healthz').catch(() => ({ status: 0 }))).status === 200, 20_000, 'box /healthz', exited);
  return {
    dicomPort,
    httpPort,
    dataDir,
    child,
    get: (path) => getJson(httpPort, path),
    peakRss: () => {
      const status = procStatus(child.pid!);
      const m = /VmHWM:\s+(\d+) kB/.exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    },
    kill: (signal = 'SIGKILL') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}

function procStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
