// Upload over a shaped line: the box in this process, Orthanc in a private network namespace behind
// a veth pair that tbf shapes to 20 Mbit/s each way, so every STOW-RS byte crosses the line. First
// the line's goodput, then a cut in the middle of a batch: what is sent twice, and that every
// instance still arrives exactly once. Needs root (namespaces); skipped with the reason otherwise.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../../../shared/types/store.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, ensureData, heudiconvMosaics, heudiconvSplit } from '../../helpers/data.ts';
import { storescu } from '../../helpers/dcmtk.ts';
import { createShapedLink, netnsUnavailable, startOrthancIn, type LinkCounters, type ShapedLink } from '../../helpers/netns.ts';
import type { OrthancInstance } from '../../helpers/orthanc.ts';
import { waitUntil } from '../../helpers/ports.ts';

const RATE = 20e6;
const CUT_MS = 5000;
const QUIET_MS = 300;

interface Queue {
  byState: Record<string, number>;
  destinations: Array<{ destination: string; pending: number; committed: number; committedBytes: number; deadLetter: number }>;
}
type Instance = InstanceRecord & { deliveries: Array<{ attempts: number; size: number }> };

interface Upload {
  total: number;
  /** Bytes of the committed (JPEG-LS) files: the goodput's numerator. */
  payload: number;
  /** Bytes the shaper let onto the line toward the PACS (frames, headers included). */
  wire: number;
  /** The box's own count of bytes it streamed (mbox_uplink_bytes_total). */
  uplinkBytes: number;
  retried: number;
  firstByteAt: number;
  lastByteAt: number;
  lastCommitAt: number;
  resumedAfterMs?: number;
  studies: Map<string, number>;
}

const skipWhy = netnsUnavailable();
if (skipWhy) console.warn(`shaped-link uplink tests SKIPPED: ${skipWhy}`);

let link: ShapedLink | undefined;
let orthanc: OrthancInstance | undefined;
let box: TestBox | undefined;
const report: Record<string, unknown> = {};

async function stopPeers(): Promise<void> {
  await box?.stop();
  box = undefined;
  await orthanc?.stop();
  orthanc = undefined;
}

// Polls the root side's tx counter every 10 ms: when bytes start and stop flowing.
function sampler() {
  const samples: Array<[number, number]> = [];
  const timer = setInterval(() => samples.push([Date.now(), link!.hostTxBytes()]), 10);
  return {
    stop: () => clearInterval(timer),
    /** First sample after `since` more than `bytes` above the count at `since`. */
    firstAbove(since: number, bytes: number): number | undefined {
      const base = samples.findLast(([t]) => t <= since)?.[1] ?? samples[0]?.[1] ?? 0;
      return samples.find(([t, b]) => t > since && b - base > bytes)?.[0];
    },
    /** Last sample at or before `until` where the count still grew by a frame or more. */
    lastGrowth(until: number): number | undefined {
      for (let i = samples.length - 1; i > 0; i--) {
        const [t, b] = samples[i]!;
        if (t <= until && b - samples[i - 1]![1] >= 1500) return t;
      }
      return undefined;
    },
  };
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

/**
 * A fresh box and Orthanc; the data set is ingested and queued while the line is cut, so the
 * upload that follows measures the line and the uploader, not ingest or transcoding. With
 * `cutAtBytes`, the line is cut again once that many bytes crossed, for CUT_MS.
 */
async function upload(cutAtBytes?: number): Promise<Upload> {
  orthanc = await startOrthancIn(link!, { dicomWeb: true });
  box = await startBox(['--destination', `http://${link!.nsAddress}:${orthanc.httpPort}/dicom-web`, '--destination-syntax', 'jpeg-ls', '--quiet-time-ms', String(QUIET_MS)]);
  // Two studies: the GE series, then the Siemens session (243 split slices and the 3 mosaics they
  // came from), ~17.6 MB once in JPEG-LS: ~7 s of line time, so the receiver's work on the last
  // batch (0.3-1 s) does not dominate the measurement.
  const series = daikonSeries();
  const split = [...heudiconvSplit(), ...heudiconvMosaics()];
  const total = series.length + split.length;
  const samples = sampler();
  try {
    await link!.cut();
    const peer = { port: box.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' };
    expect((await storescu(series.map((f) => f.file), { ...peer, propose: '1.2.840.10008.1.2.1', extraArgs: ['-ll', 'error'] })).code).toBe(0);
    expect((await storescu(split.map((f) => f.file), { ...peer, propose: split[0]!.transferSyntax ?? undefined, requiredOnly: true })).code).toBe(0);
    await waitUntil(async () => (await box!.get<Queue>('/api/queue')).body.byState.queued === total, 60_000, 'everything queued behind the cut line');

    const before: LinkCounters = await link!.counters();
    await link!.restore();
    const restoredAt = Date.now();
    let resumedAfterMs: number | undefined;
    if (cutAtBytes !== undefined) {
      await waitUntil(async () => (await link!.counters()).upWireBytes - before.upWireBytes >= cutAtBytes, 60_000, `${cutAtBytes} bytes on the line`);
      await link!.cut();
      // Mid-batch: a batch must be on its way when the line goes.
      const queue = (await box.get<Queue>('/api/queue')).body;
      expect(queue.destinations[0]!.pending).toBeGreaterThan(0);
      await sleep(CUT_MS);
      await link!.restore();
      const back = Date.now();
      await waitUntil(async () => samples.firstAbove(back, 3000) !== undefined, 120_000, 'bytes flowing again after the cut');
      resumedAfterMs = samples.firstAbove(back, 3000)! - back;
    }
    await waitUntil(async () => (await box!.get<Queue>('/api/queue')).body.byState.committed === total, 180_000, 'everything committed');
    const after = await link!.counters();
    samples.stop();

    const queue = (await box.get<Queue>('/api/queue')).body;
    expect(queue.destinations[0]).toMatchObject({ destination: 'cloud', pending: 0, committed: total, deadLetter: 0 });
    let lastCommitAt = 0;
    const studies = new Map<string, number>();
    for (const f of [...series, ...split]) {
      const rec = (await box.get<Instance>(`/api/instances/${f.sopInstance}`)).body;
      const committed = rec.history.findLast((h) => h.event === 'committed');
      expect(committed, `${f.path} committed`).toBeDefined();
      lastCommitAt = Math.max(lastCommitAt, Date.parse(committed!.at));
      studies.set(rec.header.studyInstanceUid, (studies.get(rec.header.studyInstanceUid) ?? 0) + 1);
    }
    const metrics = (await box.get<string>('/metrics')).body;
    const firstByteAt = samples.firstAbove(restoredAt, 2000);
    const lastByteAt = samples.lastGrowth(lastCommitAt);
    expect(firstByteAt).toBeDefined();
    expect(lastByteAt).toBeDefined();
    return {
      total,
      payload: queue.destinations[0]!.committedBytes,
      wire: after.upWireBytes - before.upWireBytes,
      uplinkBytes: metric(metrics, 'mbox_uplink_bytes_total', 'destination="cloud"'),
      retried: metric(metrics, 'mbox_uplink_instances_total', 'result="retry"'),
      firstByteAt: firstByteAt!,
      lastByteAt: lastByteAt!,
      lastCommitAt,
      ...(resumedAfterMs !== undefined ? { resumedAfterMs } : {}),
      studies,
    };
  } finally {
    samples.stop();
    // A box cannot stop while a request hangs on a cut line (it waits for its batches to settle).
    if (link!.isCut) await link!.restore();
  }
}

/** Exactly once at the receiver: its instance count and, per study, QIDO-RS. */
async function expectExactlyOnce(up: Upload): Promise<void> {
  expect(await orthanc!.instanceCount()).toBe(up.total);
  for (const [uid, count] of up.studies) {
    const qido = (await (await fetch(`${orthanc!.url}/dicom-web/studies/${uid}/instances`)).json()) as unknown[];
    expect(qido.length, `QIDO-RS count of study ${uid}`).toBe(count);
  }
}

describe.skipIf(skipWhy !== undefined)(`uplink over a shaped ${RATE / 1e6} Mbit/s line (netns + tbf)${skipWhy ? ` — SKIPPED: ${skipWhy}` : ''}`, () => {
  let clean: Upload | undefined;

  beforeAll(async () => {
    ensureData();
    link = await createShapedLink({ rateBitsPerSec: RATE });
  });
  afterAll(async () => {
    try {
      await stopPeers();
    } finally {
      await link?.destroy();
      if (Object.keys(report).length) console.log(`shaped-link: ${JSON.stringify(report)}`);
    }
  });

  it('keeps the line busy: goodput of a queued data set is most of the line rate', { timeout: 180_000 }, async () => {
    const up = await upload();
    clean = up;
    await expectExactlyOnce(up);
    const line = link!.rateBytesPerSec;
    const goodput = up.payload / ((up.lastCommitAt - up.firstByteAt) / 1000);
    report.goodput = {
      payloadBytes: up.payload,
      instances: up.total,
      // First byte to last commit, the receiver's work on the final batch included.
      fractionOfLine: +(goodput / line).toFixed(3),
      // First to last byte on the line: the uploader keeping the line full.
      lineOnlyFraction: +(up.payload / ((up.lastByteAt - up.firstByteAt) / 1000) / line).toFixed(3),
      lineUtilisation: +(up.wire / ((up.lastByteAt - up.firstByteAt) / 1000) / line).toFixed(3),
      // No upload can beat TCP payload / frame (1448 / 1514 at MTU 1500).
      ceiling: +link!.payloadPerFrame.toFixed(3),
      receiverTailMs: up.lastCommitAt - up.lastByteAt,
      wireBytes: up.wire,
    };
    // Nothing sent twice on a clean line.
    expect(up.uplinkBytes).toBe(up.payload);
    expect(up.retried).toBe(0);
    expect(goodput / line, JSON.stringify(report.goodput)).toBeGreaterThanOrEqual(0.8);
  });

  it('a cut mid-batch costs little re-sent, and every instance still commits exactly once', { timeout: 240_000 }, async () => {
    if (!clean) throw new Error('needs the clean upload of the test before (same data set, same line)');
    await stopPeers();
    const up = await upload(Math.round(clean.wire * 0.4));
    await expectExactlyOnce(up);
    // Same files, same line: what the cut run put on the line beyond the clean run was sent again.
    const wireResent = up.wire - clean.wire;
    const uploaderResent = up.uplinkBytes - up.payload;
    report.cut = {
      cutMs: CUT_MS,
      cutAfterBytes: Math.round(clean.wire * 0.4),
      wireBytes: up.wire,
      wireResentBytes: wireResent,
      wireResentOfPayload: +(wireResent / up.payload).toFixed(4),
      uploaderResentBytes: uploaderResent,
      instancesRetried: up.retried,
      resumedAfterRestoreMs: up.resumedAfterMs,
      extraTimeMs: up.lastCommitAt - up.firstByteAt - (clean.lastCommitAt - clean.firstByteAt),
    };
    expect(up.payload).toBe(clean.payload);
    // A cut shorter than the client's 60 s inactivity limit is TCP's business: requests in flight
    // survive it. A keep-alive connection the receiver closed during the cut can still fail the
    // one batch that tries to reuse it, so at most one batch (4 MiB by default) is streamed again...
    expect(uploaderResent, JSON.stringify(report.cut)).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(up.retried).toBeLessThanOrEqual(50);
    // ...and the line only carries again what TCP had in flight when it went (well under 5 %).
    expect(wireResent / up.payload, JSON.stringify(report.cut)).toBeLessThan(0.05);
    // TCP's retransmission backoff is the only wait after the line is back.
    expect(up.resumedAfterMs!, JSON.stringify(report.cut)).toBeLessThan(15_000);
  });
});
