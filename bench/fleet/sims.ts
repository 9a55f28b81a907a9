// The parent side of the simulators: forks --sim-procs child processes (./sim-worker.ts), each with
// its own slice of the boxes (so each stays under the per-process file-descriptor ceiling), and
// sums their once-a-second reports.
import { fork, type ChildProcess } from 'node:child_process';
import type { SimReport, SimStart } from './sim-worker.ts';

export interface SimTotals {
  at: number;
  boxes: number;
  up: number;
  connecting: number;
  everUp: number;
  failures: number;
  drops: number;
  published: number;
  publishedBytes: number;
  firstAttemptAt: number | null;
  /** When every process reported all its boxes up (the latest of them). */
  allUpAt: number | null;
  errors: Record<string, number>;
  /** Worst process. */
  loopDelayP99Ms: number;
  eluMax: number;
  cpuMs: number;
  rssBytes: number;
}

export interface SimFleetOptions {
  procs: number;
  boxesPath: string;
  /** Boxes [from, to) of the boxes file. */
  from: number;
  to: number;
  url: string;
  caPem: string;
  intervalMs: number;
  keepaliveS: number;
  ratePerSec: number;
  maxPending: number;
}

export class SimFleet {
  private readonly children: ChildProcess[] = [];
  private readonly latest = new Map<ChildProcess, SimReport>();
  /** All connect()→CONNACK and →ready samples, ms. */
  readonly connectMs: number[] = [];
  readonly readyMs: number[] = [];
  private fatal: string | undefined;

  static async start(opts: SimFleetOptions): Promise<SimFleet> {
    const fleet = new SimFleet();
    try {
      await Promise.all(Array.from({ length: opts.procs }, (_, p) => fleet.spawn(opts, p)));
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  private spawn(opts: SimFleetOptions, p: number): Promise<void> {
    const n = opts.to - opts.from;
    const from = opts.from + Math.floor((n * p) / opts.procs);
    const to = opts.from + Math.floor((n * (p + 1)) / opts.procs);
    const child = fork(new URL('./sim-worker.ts', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
    this.children.push(child);
    child.on('message', (m: SimReport | { type: 'fatal'; message: string }) => {
      if (m.type === 'report') {
        this.latest.set(child, m);
        this.connectMs.push(...m.connectMs);
        this.readyMs.push(...m.readyMs);
      } else if (m.type === 'fatal') this.fatal = `simulator ${p}: ${m.message}`;
    });
    child.once('exit', (code, signal) => {
      if (!this.stopping) this.fatal ??= `simulator ${p} exited (${signal ?? code})`;
    });
    const start: SimStart = {
      type: 'start',
      boxesPath: opts.boxesPath,
      from,
      to,
      url: opts.url,
      caPem: opts.caPem,
      intervalMs: opts.intervalMs,
      keepaliveS: opts.keepaliveS,
      ratePerSec: opts.ratePerSec / opts.procs,
      maxPending: Math.max(1, Math.ceil(opts.maxPending / opts.procs)),
    };
    return new Promise((resolve, reject) => {
      const onMsg = (m: { type: string; message?: string }): void => {
        if (m.type === 'ready') {
          child.off('message', onMsg);
          resolve();
        } else if (m.type === 'fatal') reject(new Error(`simulator ${p}: ${m.message ?? ''}`));
      };
      child.on('message', onMsg);
      child.once('exit', (code) => reject(new Error(`simulator ${p} exited with ${code} before it was ready`)));
      child.send(start);
    });
  }

  private stopping = false;

  /** An error when a simulator died. */
  failure(): Error | null {
    return this.fatal ? new Error(this.fatal) : null;
  }

  /** Asks every process for a report and sums the answers. */
  async poll(): Promise<SimTotals> {
    const before = new Map(this.latest);
    for (const c of this.children) if (c.connected) c.send({ type: 'report' });
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && this.children.some((c) => c.connected && this.latest.get(c) === before.get(c))) await new Promise((r) => setTimeout(r, 20));
    return this.totals();
  }

  totals(): SimTotals {
    const rs = [...this.latest.values()];
    const sum = (f: (r: SimReport) => number): number => rs.reduce((a, r) => a + f(r), 0);
    const errors: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    const allUp = rs.length === this.children.length && rs.every((r) => r.allUpAt !== null) ? Math.max(...rs.map((r) => r.allUpAt!)) : null;
    const firsts = rs.map((r) => r.firstAttemptAt).filter((x): x is number => x !== null);
    return {
      at: Date.now(),
      boxes: sum((r) => r.boxes),
      up: sum((r) => r.up),
      connecting: sum((r) => r.connecting),
      everUp: sum((r) => r.everUp),
      failures: sum((r) => r.failures),
      drops: sum((r) => r.drops),
      published: sum((r) => r.published),
      publishedBytes: sum((r) => r.publishedBytes),
      firstAttemptAt: firsts.length ? Math.min(...firsts) : null,
      allUpAt: allUp,
      errors,
      loopDelayP99Ms: Math.max(0, ...rs.map((r) => r.loopDelayP99Ms)),
      eluMax: Math.max(0, ...rs.map((r) => r.elu)),
      cpuMs: sum((r) => r.cpuUserMs + r.cpuSystemMs),
      rssBytes: sum((r) => r.rssBytes),
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (c.connected) c.send({ type: 'stop' });
            else c.kill('SIGTERM');
          }),
      ),
    );
  }
}
