// Fleet scale benchmark: simulated boxes — real MQTT clients over mutual TLS on loopback, each with
// its own certificate from the fleet CA — heartbeat telemetry every 10 s into one `mbox fleet`
// child process. Per mode (embedded aedes, external mosquitto) it reports the boxes connected,
// the connect ramp, the message rate, telemetry → state latency (the fleet's own summary, plus an
// outside probe through the API), and the fleet's RSS and CPU (and mosquitto's). Targets from the
// issue: 20,000 boxes, p99 < 1 s, RSS < 1 GB. One broker process can hold no more connections than
// its file-descriptor limit allows, so the default box count is what fits under it.
import { mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { formatText, stamp, writeResults } from './lib/table.ts';
import { prepareFixture, WORK_DIR } from './fleet/identities.ts';
import { hostFacts, type HostFacts } from './fleet/proc.ts';
import { summariseProfiles, type ProfileSummary } from './fleet/profile.ts';
import { fleetTables, verdicts, type Verdict } from './fleet/report.ts';
import type { ModeResult, RunOptions } from './fleet/result.ts';
import { runMode, type Mode } from './fleet/run-mode.ts';

/** Targets from the issue. */
export const TARGETS = { boxes: 20_000, p99S: 1, rssMB: 1024 } as const;
/** Descriptors a broker process needs besides its box connections (LevelDB, HTTP, its own bus, stdio). */
const FD_RESERVE = 500;
const BOXES_PER_SIM_PROC = 5000;

export interface FleetBenchOptions extends RunOptions {
  modes: Mode[];
  /** The most boxes one broker process can hold under RLIMIT_NOFILE. */
  fdCeiling: number;
}

export interface FleetBenchResult {
  bench: 'fleet';
  startedAt: string;
  finishedAt: string;
  host: HostFacts;
  options: FleetBenchOptions;
  identities: { count: number; reused: boolean; keygenMsPerBox: number; csrMsPerBox: number; issueMsPerBox: number; workers: number };
  modes: ModeResult[];
  verdicts: Verdict[];
  profiles?: ProfileSummary[];
  failed: boolean;
}

export function parseFleetArgs(argv: string[], host = hostFacts()): FleetBenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      boxes: { type: 'string' },
      'interval-ms': { type: 'string' },
      'duration-s': { type: 'string' },
      'settle-s': { type: 'string' },
      modes: { type: 'string' },
      'sim-procs': { type: 'string' },
      'connect-rate': { type: 'string' },
      'max-pending': { type: 'string' },
      probes: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
    },
  });
  const int = (name: string, dflt: number, ok: (n: number) => boolean = (n) => n >= 1): number => {
    const v = values[name];
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || !ok(n)) throw new Error(`--${name}: invalid value ${String(v)}`);
    return n;
  };
  const fdCeiling = Number.isFinite(host.nofileHard) ? Math.max(100, host.nofileHard - FD_RESERVE) : TARGETS.boxes;
  const boxes = int('boxes', Math.min(TARGETS.boxes, Math.floor(fdCeiling / 500) * 500));
  const modes = (typeof values.modes === 'string' ? values.modes : 'aedes,mosquitto').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'aedes' && m !== 'mosquitto') throw new Error(`--modes: unknown mode ${m} (aedes, mosquitto)`);
  const simProcs = int('sim-procs', Math.max(2, Math.ceil(boxes / BOXES_PER_SIM_PROC)));
  if (boxes / simProcs > fdCeiling) throw new Error(`--sim-procs ${simProcs}: ${Math.ceil(boxes / simProcs)} boxes per simulator exceed the ${fdCeiling} descriptors one process may hold`);
  return {
    boxes,
    intervalMs: int('interval-ms', 10_000, (n) => n >= 100),
    durationS: int('duration-s', 60),
    settleS: int('settle-s', 15, (n) => n >= 0),
    modes: modes as Mode[],
    simProcs,
    ratePerSec: int('connect-rate', 250),
    maxPending: int('max-pending', 400),
    keepaliveS: 60,
    probes: int('probes', 10, (n) => n >= 0),
    fdCeiling,
    ...(values['cpu-prof'] ? { cpuProfDir: join(WORK_DIR, `prof-${stamp()}`) } : {}),
  };
}

export async function runFleetBench(o: FleetBenchOptions, say: (l: string) => void = (l) => console.error(l)): Promise<FleetBenchResult> {
  const startedAt = new Date().toISOString();
  const host = hostFacts();
  say(`fleet bench: ${o.boxes} boxes, telemetry every ${o.intervalMs} ms, ${o.durationS} s steady window, modes ${o.modes.join(', ')}, ${o.simProcs} simulator processes`);
  say(`fleet bench: RLIMIT_NOFILE ${host.nofileSoft}/${host.nofileHard} (hard limit ${host.nofileRaisable ? 'can' : 'CANNOT'} be raised here): one broker process holds at most ~${o.fdCeiling} box connections`);
  if (o.boxes > o.fdCeiling) say(`fleet bench: WARNING --boxes ${o.boxes} exceeds that ceiling; the broker will refuse connections past it`);
  const fx = await prepareFixture(o.boxes, say);
  if (o.cpuProfDir) await mkdir(o.cpuProfDir, { recursive: true });
  const modes: ModeResult[] = [];
  for (const mode of o.modes) {
    say(`fleet bench: mode ${mode}`);
    modes.push(await runMode(mode, fx, o, say));
  }
  const profiles = o.cpuProfDir ? await summariseProfiles(o.cpuProfDir, o.modes) : undefined;
  const v = verdicts(modes, o);
  return {
    bench: 'fleet',
    startedAt,
    finishedAt: new Date().toISOString(),
    host,
    options: o,
    identities: {
      count: fx.count,
      reused: fx.made.reused,
      keygenMsPerBox: fx.made.keygenMs / fx.count,
      csrMsPerBox: fx.made.csrMs / fx.count,
      issueMsPerBox: fx.made.issueMs / fx.count,
      workers: fx.made.workers,
    },
    modes,
    verdicts: v,
    ...(profiles ? { profiles } : {}),
    failed: modes.some((m) => !m.ok) || v.some((x) => !x.pass),
  };
}

/** Prints the tables and writes bench/results/fleet-<stamp>.json and fleet-latest.md. */
export async function reportFleet(r: FleetBenchResult): Promise<void> {
  const tables = fleetTables(r);
  for (const t of tables) console.log('\n' + formatText(t));
  const h = r.host;
  const id = r.identities;
  const preamble = [
    `Host: ${h.cpu} ×${h.cpus}, ${(h.memBytes / 2 ** 30).toFixed(0)} GiB, kernel ${h.kernel}, Node ${h.node}, ${h.mosquitto}; load average at start ${h.loadAvg.map((x) => x.toFixed(2)).join(' ')} (the machine is shared: other work ran too).`,
    `File descriptors: RLIMIT_NOFILE ${h.nofileSoft}/${h.nofileHard}, hard limit ${h.nofileRaisable ? 'raisable' : 'not raisable (no CAP_SYS_RESOURCE)'} — one broker process (the fleet with embedded aedes, or mosquitto) holds at most ~${r.options.fdCeiling} box connections, so the run uses ${r.options.boxes} boxes against the 20,000 target. Ephemeral ports ${h.ephemeralPorts}.`,
    `Boxes: real mqtt.js clients (MQTT 3.1.1, mutual TLS, own EC P-256 key and certificate each, persistent session, retained online status + last will, QoS 1 subscriptions to desired config and commands, QoS 0 telemetry of ~1.2 kB every ${r.options.intervalMs / 1000} s at a random phase) in ${r.options.simProcs} simulator processes, connected at ${r.options.ratePerSec}/s with at most ${r.options.maxPending} handshakes in flight, plus ${r.options.probes} probe boxes in the bench process.`,
    `Identities: ${id.count} certificates issued from CSRs by the fleet PKI${id.reused ? ' (cached from an earlier run)' : ''}; per box on ${id.workers} worker threads: keygen ${id.keygenMsPerBox.toFixed(2)} ms, CSR ${id.csrMsPerBox.toFixed(2)} ms, issue ${id.issueMsPerBox.toFixed(2)} ms. Each mode starts from a fresh data dir: a copy of the CA and a registry with every box registered (${r.modes.map((m) => `${m.mode} ${m.registerS?.toFixed(1) ?? '?'} s`).join(', ')}).`,
    `Latency: the fleet's mbox_fleet_telemetry_latency_seconds (telemetry.at on the box → state updated; a sliding 60 s summary read at the end of the window; mean over exactly the window). Probe: publish → the new seq visible in GET /api/devices/:id, polled every 20 ms (an upper bound). Same clock on both ends.`,
  ];
  const out = await writeResults('fleet', r, tables, { when: new Date(r.startedAt), preamble });
  console.log(`\nresults: ${relative(process.cwd(), out.jsonPath)}, ${relative(process.cwd(), out.markdownPath)}`);
}

export async function runFleetCli(argv: string[]): Promise<boolean> {
  const result = await runFleetBench(parseFleetArgs(argv));
  await reportFleet(result);
  return !result.failed;
}

if (import.meta.main) process.exitCode = (await runFleetCli(process.argv.slice(2))) ? 0 : 1;
