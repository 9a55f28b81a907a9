// The fleet bench's tables: one row per figure, one column per mode, mosquitto/aedes as a ratio,
// and the verdicts against the issue's targets.
import type { Cell, Table } from '../lib/table.ts';
import type { FleetBenchResult } from '../fleet.ts';
import type { ModeResult, ProcFigures, RunOptions } from './result.ts';

const P99_TARGET_S = 1;
const RSS_TARGET_MB = 1024;
const ISSUE_BOXES = 20_000;

const firstLine = (s: string | undefined): string => (s ?? 'failed').split('\n')[0]!.slice(0, 160);

export interface Verdict {
  mode: string;
  check: string;
  value: string;
  pass: boolean;
}

/** Fleet RSS, with an external broker counted too: it is part of what the fleet needs. */
export function footprintMB(m: ModeResult): number | null {
  const f = m.fleet?.rssPeakMB;
  if (f === null || f === undefined) return null;
  return f + (m.broker?.rssPeakMB ?? 0);
}

export function verdicts(modes: ModeResult[], o: RunOptions): Verdict[] {
  const out: Verdict[] = [];
  for (const m of modes) {
    if (!m.ok) {
      out.push({ mode: m.mode, check: 'ran', value: firstLine(m.error), pass: false });
      continue;
    }
    const online = m.connected?.fleetApi ?? 0;
    out.push({ mode: m.mode, check: `boxes online ≥ ${o.boxes} (20,000 capped by the fd limit)`, value: String(online), pass: online >= o.boxes });
    const p99 = m.steady?.latencyP99S ?? null;
    out.push({ mode: m.mode, check: `p99 telemetry → state < ${P99_TARGET_S} s`, value: p99 === null ? 'n/a' : `${(p99 * 1000).toFixed(0)} ms`, pass: p99 !== null && p99 < P99_TARGET_S });
    const rss = footprintMB(m);
    out.push({ mode: m.mode, check: `peak RSS < 1 GB${m.broker ? ' (fleet + mosquitto)' : ''}`, value: rss === null ? 'n/a' : `${rss.toFixed(0)} MB`, pass: rss !== null && rss < RSS_TARGET_MB });
  }
  return out;
}

type Get = (m: ModeResult) => number | null | undefined;
interface Row {
  label: string;
  target?: string;
  get: Get;
  digits?: number;
  /** No ratio for counts that should simply be equal. */
  ratio?: boolean;
}

const procRows = (who: string, pick: (m: ModeResult) => ProcFigures | undefined, target?: string): Row[] => [
  { label: `${who} RSS, steady mean (MB)`, get: (m) => pick(m)?.rssSteadyMB, digits: 0 },
  { label: `${who} RSS, peak / VmHWM (MB)`, target, get: (m) => pick(m)?.rssPeakMB, digits: 0 },
  { label: `${who} CPU, steady (% of one core)`, get: (m) => pick(m)?.cpuSteadyPct, digits: 1 },
  { label: `${who} CPU, during the ramp (%)`, get: (m) => pick(m)?.cpuRampPct, digits: 1 },
  { label: `${who} open descriptors at the end`, get: (m) => pick(m)?.fdsAtEnd, digits: 0, ratio: false },
];

function rows(o: RunOptions): Row[] {
  const ms = (s: number | null | undefined): number | null => (s === null || s === undefined ? null : s * 1000);
  return [
    { label: 'boxes up (simulator side)', target: `${o.boxes}`, get: (m) => m.connected?.simulator, digits: 0, ratio: false },
    { label: 'boxes online (GET /api/devices?online=true)', target: `${o.boxes}`, get: (m) => m.connected?.fleetApi, digits: 0, ratio: false },
    { label: 'box connections at the broker (sockets)', get: (m) => m.connected?.broker, digits: 0, ratio: false },
    { label: 'connect: first attempt → all up (s)', get: (m) => m.connect?.allUpS, digits: 1 },
    { label: 'connect: first attempt → fleet shows all online (s)', get: (m) => m.connect?.fleetOnlineS, digits: 1 },
    { label: 'connect → CONNACK p50 (ms)', get: (m) => m.connect?.connackMs.p50, digits: 0 },
    { label: 'connect → CONNACK p99 (ms)', get: (m) => m.connect?.connackMs.p99, digits: 0 },
    { label: 'connect → ready (status acked, subscribed) p99 (ms)', get: (m) => m.connect?.readyMs.p99, digits: 0 },
    { label: 'connect failures / dropped connections', get: (m) => (m.connect ? m.connect.failures + m.connect.drops : null), digits: 0, ratio: false },
    { label: 'telemetry published per s (expected boxes ÷ interval)', get: (m) => m.steady?.publishedPerS, digits: 0 },
    { label: 'telemetry handled by the fleet per s', get: (m) => m.steady?.telemetryPerS, digits: 0 },
    { label: 'all device messages handled per s', get: (m) => m.steady?.messagesPerS, digits: 0 },
    { label: 'telemetry → state p50 (ms, fleet metric)', get: (m) => ms(m.steady?.latencyP50S), digits: 1 },
    { label: 'telemetry → state p90 (ms, fleet metric)', get: (m) => ms(m.steady?.latencyP90S), digits: 1 },
    { label: 'telemetry → state p99 (ms, fleet metric)', target: '< 1000', get: (m) => ms(m.steady?.latencyP99S), digits: 1 },
    { label: 'telemetry → state mean over the window (ms)', get: (m) => ms(m.steady?.latencyMeanS), digits: 1 },
    { label: 'probe: publish → visible in the API p50 (ms)', get: (m) => m.steady?.probeMs.p50, digits: 0 },
    { label: 'probe: publish → visible in the API p99 (ms)', get: (m) => m.steady?.probeMs.p99, digits: 0 },
    { label: 'probe samples (timeouts)', get: (m) => m.steady?.probeMs.n, digits: 0, ratio: false },
    ...procRows('fleet', (m) => m.fleet, '< 1024'),
    { label: 'fleet V8 heap used at the end (MB)', get: (m) => m.fleetHeapMB, digits: 0 },
    { label: 'fleet external memory at the end (MB)', get: (m) => m.fleetExternalMB, digits: 0 },
    ...procRows('mosquitto', (m) => m.broker),
    { label: 'fleet + broker peak RSS (MB)', target: '< 1024', get: footprintMB, digits: 0 },
    { label: 'fleet + broker CPU, steady (%)', get: (m) => (m.fleet?.cpuSteadyPct == null ? null : m.fleet.cpuSteadyPct + (m.broker?.cpuSteadyPct ?? 0)), digits: 1 },
    { label: 'simulators CPU, steady (%, all processes)', get: (m) => m.simulators?.cpuPct, digits: 1 },
    { label: 'simulators RSS (MB, all processes)', get: (m) => m.simulators?.rssMB, digits: 0 },
    { label: 'simulators worst event-loop delay p99 (ms)', get: (m) => m.simulators?.loopDelayP99MaxMs, digits: 0 },
    { label: 'machine: all CPUs busy, steady mean (%)', get: (m) => m.machine?.busyPct, digits: 0, ratio: false },
    { label: 'machine: load average (1 min) at the end', get: (m) => m.machine?.load1, digits: 2, ratio: false },
  ];
}

const fmt = (v: number | null | undefined, digits: number): Cell => (v === null || v === undefined || !Number.isFinite(v) ? null : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));

export function fleetTables(r: FleetBenchResult): Table[] {
  const o = r.options;
  const modes = r.modes;
  const a = modes.find((m) => m.mode === 'aedes');
  const b = modes.find((m) => m.mode === 'mosquitto');
  const withRatio = Boolean(a?.ok && b?.ok);
  const columns = [{ header: 'figure', align: 'left' as const }, { header: 'target', align: 'right' as const }, ...modes.map((m) => ({ header: m.mode, align: 'right' as const }))];
  if (withRatio) columns.push({ header: 'mosquitto/aedes', align: 'right' as const });
  const body: Cell[][] = rows(o)
    .filter((row) => modes.some((m) => row.get(m) !== undefined && row.get(m) !== null))
    .map((row) => {
      const cells: Cell[] = [row.label, row.target ?? '', ...modes.map((m) => fmt(row.get(m), row.digits ?? 1))];
      if (withRatio) {
        const x = row.get(a!);
        const y = row.get(b!);
        cells.push(row.ratio === false || !x || y === null || y === undefined ? '' : `${(y / x).toFixed(2)}×`);
      }
      return cells;
    });
  const probeNote = modes.map((m) => `${m.mode}: ${m.steady?.probeMs.timeouts ?? 0} probe timeouts`).join(', ');
  const errors = modes.flatMap((m) => Object.entries(m.connect?.errors ?? {}).sort((x, y) => y[1] - x[1]).slice(0, 5).map(([k, n]) => `${m.mode} connect error ×${n}: ${k}`));
  const main: Table = {
    title: `Fleet scale — ${o.boxes.toLocaleString('en-US')} boxes, telemetry every ${o.intervalMs / 1000} s, ${o.durationS} s steady window`,
    columns,
    rows: body,
    notes: [
      `CPU is % of one core (2 vCPUs in all, shared by the fleet, the broker and ${o.simProcs} simulator processes).`,
      probeNote,
      ...modes.filter((m) => !m.ok).map((m) => `${m.mode} FAILED: ${firstLine(m.error)}`),
      ...errors,
    ],
  };
  const verdict: Table = {
    title: 'Targets',
    columns: [{ header: 'mode' }, { header: 'check' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    rows: r.verdicts.map((v) => [v.mode, v.check, v.value, v.pass ? 'PASS' : 'FAIL']),
    notes: [`The issue's 20,000 boxes cannot be held by one process here (RLIMIT_NOFILE hard ${r.host.nofileHard}); ${ISSUE_BOXES - o.boxes} short of the target by that limit alone.`],
  };
  const tables = [main, verdict];
  for (const p of r.profiles ?? []) {
    tables.push({
      title: `Fleet CPU profile (${p.mode}): self time by function, ${p.totalS.toFixed(1)} s sampled`,
      columns: [{ header: 'function' }, { header: 'where' }, { header: 'self %', digits: 1 }, { header: 'self s', digits: 2 }],
      rows: p.top.map((f) => [f.name, f.where, f.pct, f.selfS]),
      notes: [`By package: ${p.byPackage.map((x) => `${x.name} ${x.pct.toFixed(1)} %`).join(', ')}`],
    });
  }
  return tables;
}
