// What one mode of the fleet bench measured, computed from its samples: connect ramp, steady-state
// message rate and latency, and the fleet's (and an external broker's) memory and CPU.
import type { ProbeResult } from './probe.ts';
import { cpuPercent, type ProcSample } from './proc.ts';
import type { SimFleet, SimTotals } from './sims.ts';
import { dist, mean, MB, type Dist } from './stats.ts';

export interface RunOptions {
  boxes: number;
  intervalMs: number;
  durationS: number;
  settleS: number;
  simProcs: number;
  ratePerSec: number;
  maxPending: number;
  keepaliveS: number;
  probes: number;
  cpuProfDir?: string;
}

/** One sample a second (ramp and steady window). */
export interface Tick {
  /** Seconds since the mode started. */
  t: number;
  simUp: number;
  probesUp: number;
  simPublished: number;
  fleetOnline: number | null;
  fleetTelemetry: number | null;
  brokerSockets: number | null;
  fleetProc: ProcSample | undefined;
  fleetCpuPct: number | null;
  brokerProc: ProcSample | undefined;
  brokerCpuPct: number | null;
  simCpuMs: number;
  simLoopDelayP99Ms: number;
  /** V8 heap in use and memory outside it (buffers, TLS), from the fleet's /metrics. */
  fleetHeapMB: number | null;
  fleetExternalMB: number | null;
  /** All CPUs of the machine, % busy since the previous tick; and the 1-minute load average. */
  machineBusyPct: number | null;
  load1: number;
}

interface Edge {
  proc: { fleet?: ProcSample; broker?: ProcSample };
  metrics: Map<string, number>;
  sims: SimTotals;
  at: number;
}

export interface Window {
  w0: Edge;
  w1: Edge;
  ticks: Tick[];
  fleetOnlineApi: number | null;
  brokerSockets: number;
  probe: ProbeResult;
}

export interface ProcFigures {
  rssSteadyMB: number | null;
  rssMaxMB: number | null;
  /** VmHWM at the end: the peak over the whole mode, ramp included. */
  rssPeakMB: number | null;
  cpuSteadyPct: number | null;
  cpuRampPct: number | null;
  fdsAtEnd: number | null;
}

export interface ModeResult {
  mode: string;
  ok: boolean;
  error?: string;
  boxes: number;
  /** Filling the fresh registry with every box before the fleet starts, s. */
  registerS?: number;
  connected?: {
    /** Boxes whose client was up at the end of the window (simulators + probes). */
    simulator: number;
    /** GET /api/devices?online=true at the end of the window. */
    fleetApi: number | null;
    /** mbox_fleet_devices{state="online"}. */
    fleetGauge: number | null;
    /** ESTABLISHED sockets on the broker port, minus the fleet's own connection. */
    broker: number;
  };
  connect?: {
    /** First attempt → every box up (simulator side). */
    allUpS: number | null;
    /** First attempt → the fleet counting every box online. */
    fleetOnlineS: number | null;
    /** connect() → CONNACK and → ready (status acked, subscriptions granted), ms. */
    connackMs: Dist;
    readyMs: Dist;
    failures: number;
    drops: number;
    errors: Record<string, number>;
  };
  steady?: {
    windowS: number;
    /** What the simulators published per second, and what the boxes up should publish. */
    publishedPerS: number;
    expectedPerS: number;
    /** Telemetry the fleet handled per second, and every device message. */
    telemetryPerS: number;
    messagesPerS: number;
    /** The fleet's summary (sliding 60 s) at the end of the window, seconds. */
    latencyP50S: number | null;
    latencyP90S: number | null;
    latencyP99S: number | null;
    /** Mean over exactly the window, from the summary's sum and count. */
    latencyMeanS: number | null;
    /** Outside view: publish → seen in GET /api/devices/:id, ms. */
    probeMs: Dist & { timeouts: number; errors: number };
  };
  fleet?: ProcFigures;
  broker?: ProcFigures;
  simulators?: { procs: number; cpuPct: number; rssMB: number; loopDelayP99MaxMs: number };
  /** The machine during the steady window: every CPU's busy share (mean), the load average at the end. */
  machine?: { busyPct: number | null; load1: number };
  /** The fleet's V8 heap in use and external memory at the end of the window, MB. */
  fleetHeapMB?: number | null;
  fleetExternalMB?: number | null;
  ticks: Tick[];
}

export function collectModeResult(a: {
  mode: string;
  count: number;
  o: RunOptions;
  idle: { fleet?: ProcSample; broker?: ProcSample };
  rampEnd: { fleet?: ProcSample; broker?: ProcSample };
  ticks: Tick[];
  window: Window;
  allUpAt: number | null;
  fleetOnlineAt: number | null;
  sims: SimFleet;
  embedded: boolean;
}): ModeResult {
  const { window: w, o } = a;
  const windowS = (w.w1.at - w.w0.at) / 1000;
  const m0 = w.w0.metrics;
  const m1 = w.w1.metrics;
  const delta = (k: string): number => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
  const kinds = [...m1.keys()].filter((k) => k.startsWith('mbox_fleet_messages_total{'));
  const lat = (q: string): number | null => {
    const v = m1.get(`mbox_fleet_telemetry_latency_seconds{quantile="${q}"}`);
    return v === undefined || Number.isNaN(v) ? null : v;
  };
  const latCount = delta('mbox_fleet_telemetry_latency_seconds_count');
  const first = w.w1.sims.firstAttemptAt;
  const upAtEnd = w.w1.sims.up + w.ticks.at(-1)!.probesUp;
  const procFigures = (key: 'fleetProc' | 'brokerProc', edge: 'fleet' | 'broker'): ProcFigures => {
    const rss = w.ticks.map((t) => t[key]?.rssBytes).filter((x): x is number => x !== undefined);
    const p0 = w.w0.proc[edge];
    const p1 = w.w1.proc[edge];
    const i0 = a.idle[edge];
    const r1 = a.rampEnd[edge];
    return {
      rssSteadyMB: rss.length ? mean(rss)! / MB : null,
      rssMaxMB: rss.length ? Math.max(...rss) / MB : null,
      rssPeakMB: p1 ? p1.hwmBytes / MB : null,
      cpuSteadyPct: p0 && p1 ? cpuPercent(p0, p1) : null,
      cpuRampPct: i0 && r1 ? cpuPercent(i0, r1) : null,
      fdsAtEnd: p1?.fds ?? null,
    };
  };
  const simCpuPct = ((w.w1.sims.cpuMs - w.w0.sims.cpuMs) / 1000 / windowS) * 100;
  return {
    mode: a.mode,
    ok: true,
    boxes: a.count,
    connected: {
      simulator: upAtEnd,
      fleetApi: w.fleetOnlineApi,
      fleetGauge: m1.get('mbox_fleet_devices{state="online"}') ?? null,
      broker: Math.max(0, w.brokerSockets - 1),
    },
    connect: {
      allUpS: a.allUpAt && first ? (a.allUpAt - first) / 1000 : null,
      fleetOnlineS: a.fleetOnlineAt && first ? (a.fleetOnlineAt - first) / 1000 : null,
      connackMs: dist(a.sims.connectMs),
      readyMs: dist(a.sims.readyMs),
      failures: w.w1.sims.failures,
      drops: w.w1.sims.drops,
      errors: w.w1.sims.errors,
    },
    steady: {
      windowS,
      publishedPerS: (w.w1.sims.published - w.w0.sims.published) / windowS,
      expectedPerS: upAtEnd / (o.intervalMs / 1000),
      telemetryPerS: delta('mbox_fleet_messages_total{kind="telemetry"}') / windowS,
      messagesPerS: kinds.reduce((n, k) => n + delta(k), 0) / windowS,
      latencyP50S: lat('0.5'),
      latencyP90S: lat('0.9'),
      latencyP99S: lat('0.99'),
      latencyMeanS: latCount > 0 ? delta('mbox_fleet_telemetry_latency_seconds_sum') / latCount : null,
      probeMs: { ...dist(w.probe.samples), timeouts: w.probe.timeouts, errors: w.probe.errors },
    },
    fleet: procFigures('fleetProc', 'fleet'),
    ...(a.embedded ? {} : { broker: procFigures('brokerProc', 'broker') }),
    machine: { busyPct: mean(w.ticks.map((t) => t.machineBusyPct).filter((x): x is number => x !== null)), load1: w.ticks.at(-1)?.load1 ?? 0 },
    fleetHeapMB: w.ticks.at(-1)?.fleetHeapMB ?? null,
    fleetExternalMB: w.ticks.at(-1)?.fleetExternalMB ?? null,
    simulators: { procs: o.simProcs, cpuPct: simCpuPct, rssMB: w.w1.sims.rssBytes / MB, loopDelayP99MaxMs: Math.max(0, ...w.ticks.map((t) => t.simLoopDelayP99Ms)) },
    ticks: a.ticks,
  };
}
