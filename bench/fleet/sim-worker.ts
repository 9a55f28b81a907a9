// A simulator child process: a slice of the simulated boxes, each a real MQTT client over mutual
// TLS (./box-client.ts). Connects them at a given rate with a cap on handshakes in flight, retries
// failures with jittered backoff, and reports its counters to the parent over IPC once a second.
// Started by ./sims.ts with `fork`; messages are SimCommand in and SimReport out.
import { readFile } from 'node:fs/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { BoxClient, type BoxEvents } from './box-client.ts';
import type { SimBox } from './identities.ts';

export interface SimStart {
  type: 'start';
  boxesPath: string;
  from: number;
  to: number;
  url: string;
  caPem: string;
  intervalMs: number;
  keepaliveS: number;
  /** New connection attempts per second for this process. */
  ratePerSec: number;
  /** Attempts (TLS + CONNECT + status + SUBSCRIBE) in flight at most. */
  maxPending: number;
}
export type SimCommand = SimStart | { type: 'stop' } | { type: 'report' };

export interface SimReport {
  type: 'report';
  at: number;
  boxes: number;
  up: number;
  connecting: number;
  /** Boxes that were up at least once. */
  everUp: number;
  failures: number;
  drops: number;
  published: number;
  publishedBytes: number;
  /** Wall-clock ms (Date.now) of the first attempt and of the moment all were up at once. */
  firstAttemptAt: number | null;
  allUpAt: number | null;
  /** Samples since the previous report: connect() → CONNACK and → ready, ms. */
  connectMs: number[];
  readyMs: number[];
  errors: Record<string, number>;
  loopDelayP99Ms: number;
  /** Event-loop utilisation since the previous report, 0..1. */
  elu: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  rssBytes: number;
}

const send = (m: SimReport | { type: 'ready' } | { type: 'fatal'; message: string }): void => {
  process.send?.(m);
};

let clients: BoxClient[] = [];
const waiting: BoxClient[] = [];
let pending = 0;
let upNow = 0;
const stats = { everUp: new Set<number>(), failures: 0, drops: 0, published: 0, publishedBytes: 0, firstAttemptAt: null as number | null, allUpAt: null as number | null };
let connectMs: number[] = [];
let readyMs: number[] = [];
const errors: Record<string, number> = {};
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let lastElu = performance.eventLoopUtilization();

const noteError = (reason: string): void => {
  const key = reason.replace(/mb-sim\d+/g, '<id>').slice(0, 120);
  errors[key] = (errors[key] ?? 0) + 1;
};

// Waiting boxes are tried again after a jittered delay, through the same rate gate.
const retryLater = (box: BoxClient, baseMs: number): void => {
  setTimeout(() => waiting.push(box), baseMs / 2 + Math.random() * baseMs);
};

const events: BoxEvents = {
  ready(box, cMs, rMs) {
    pending--;
    stats.everUp.add(box.index);
    connectMs.push(Math.round(cMs));
    readyMs.push(Math.round(rMs));
    upNow++;
    if (stats.allUpAt === null && upNow === clients.length) stats.allUpAt = Date.now();
  },
  failed(box, reason) {
    pending--;
    stats.failures++;
    noteError(reason);
    retryLater(box, 5000);
  },
  dropped(box, reason) {
    upNow--;
    stats.drops++;
    noteError(`dropped: ${reason}`);
    retryLater(box, 10_000);
  },
  published(_box, bytes) {
    stats.published++;
    stats.publishedBytes += bytes;
  },
};

async function start(cmd: SimStart): Promise<void> {
  const lines = (await readFile(cmd.boxesPath, 'utf8')).split('\n');
  const opts = { url: cmd.url, caPem: cmd.caPem, keepaliveS: cmd.keepaliveS, intervalMs: cmd.intervalMs, events };
  clients = [];
  for (let i = cmd.from; i < cmd.to; i++) {
    const line = lines[i];
    if (!line) throw new Error(`boxes file ${cmd.boxesPath} has no line ${i}`);
    clients.push(new BoxClient(JSON.parse(line) as SimBox, i, opts));
  }
  waiting.push(...clients);
  send({ type: 'ready' });
  // The ramp: a token bucket refilled every 10 ms, spent only while fewer than maxPending wait.
  let tokens = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    tokens = Math.min(cmd.ratePerSec, tokens + ((now - last) * cmd.ratePerSec) / 1000);
    last = now;
    while (tokens >= 1 && pending < cmd.maxPending && waiting.length > 0) {
      const box = waiting.shift()!;
      tokens--;
      pending++;
      stats.firstAttemptAt ??= Date.now();
      box.connect();
    }
  }, 10);
  tick.unref();
}

function report(): SimReport {
  const elu = performance.eventLoopUtilization(lastElu);
  lastElu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  let up = 0;
  let connecting = 0;
  for (const c of clients) {
    if (c.state === 'up') up++;
    else if (c.state === 'connecting') connecting++;
  }
  const r: SimReport = {
    type: 'report',
    at: Date.now(),
    boxes: clients.length,
    up,
    connecting,
    everUp: stats.everUp.size,
    failures: stats.failures,
    drops: stats.drops,
    published: stats.published,
    publishedBytes: stats.publishedBytes,
    firstAttemptAt: stats.firstAttemptAt,
    allUpAt: stats.allUpAt,
    connectMs,
    readyMs,
    errors: { ...errors },
    loopDelayP99Ms: loop.percentile(99) / 1e6,
    elu: elu.utilization,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    rssBytes: process.memoryUsage.rss(),
  };
  connectMs = [];
  readyMs = [];
  loop.reset();
  return r;
}

process.on('message', (m: SimCommand) => {
  if (m.type === 'start') {
    start(m).catch((err: unknown) => {
      send({ type: 'fatal', message: (err as Error).message });
      process.exit(1);
    });
  } else if (m.type === 'report') {
    send(report());
  } else if (m.type === 'stop') {
    for (const c of clients) c.destroy();
    process.exit(0);
  }
});
// The parent going away (crash, Ctrl-C) must not leave thousands of connections behind.
process.on('disconnect', () => process.exit(0));
