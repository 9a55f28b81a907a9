// The upload queue end to end inside one process: preparer → deliveries → uploader, with a fake
// transcoder and a scripted receiver (the real ones are proven against Orthanc in integration).
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sweepCommitted } from '../../../../appliance/store/retention.ts';
import { Store } from '../../../../appliance/store/store.ts';
import { Preparer } from '../../../../appliance/uplink/prepare.ts';
import { Uploader, type StowSender } from '../../../../appliance/uplink/uploader.ts';
import { ApplianceConfigSchema, destinationsOf } from '../../../../shared/config/appliance.ts';
import { loadConfig } from '../../../../shared/config/load.ts';
import type { StowInstance, StowResult } from '../../../../shared/dicomweb/types.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { Transcoder } from '../../../../shared/types/pipeline.ts';
import type { DicomHeader } from '../../../../shared/types/store.ts';

const log = createLogger('silent');
const stores: Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

const unchanged: Transcoder = {
  transcode: async () => ({ outcome: 'unchanged', transferSyntaxUid: '1.2.840.10008.1.2.1', inputSize: 10, size: 10, reason: 'test', encodeMs: 0 }),
  close: async () => undefined,
};

function destinations(extra: string[] = []) {
  return destinationsOf(loadConfig(ApplianceConfigSchema, { argv: ['--destination', 'http://127.0.0.1:1/dicom-web', ...extra] }));
}

async function fill(n: number, modality = 'MR') {
  const dataDir = mkdtempSync(join(tmpdir(), 'queue-'));
  const store = await Store.open({ dataDir, quietTimeMs: 30, log });
  stores.push(store);
  for (let i = 0; i < n; i++) {
    const content = `object-${i}-${modality}`;
    const tempPath = store.newTempPath();
    writeFileSync(tempPath, content);
    const header: DicomHeader = { transferSyntaxUid: '1.2.840.10008.1.2.1', sopClassUid: '1.2.3', sopInstanceUid: `1.${i}`, studyInstanceUid: '9.9', seriesInstanceUid: '9.9.1', modality };
    await store.accept({ header, contentHash: createHash('sha256').update(content).digest('hex'), tempPath, size: content.length, source: { kind: 'watch', path: `${i}` } });
  }
  await new Promise((r) => setTimeout(r, 80)); // the study's quiet time passes
  return store;
}

/** A receiver that answers each batch with the given function. */
function receiver(answer: (batch: StowInstance[], call: number) => StowResult): StowSender & { calls: StowInstance[][] } {
  const calls: StowInstance[][] = [];
  return {
    calls,
    store: async (instances) => {
      calls.push(instances);
      return answer(instances, calls.length);
    },
  };
}
const stored = (batch: StowInstance[]): StowResult => ({ httpStatus: 200, results: batch.map((i) => ({ sopInstanceUid: i.sopInstanceUid, outcome: 'stored', retryable: false })) });

async function runUntil(uploader: Uploader, check: () => Promise<boolean>) {
  uploader.start();
  const until = Date.now() + 5000;
  while (!(await check()) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  await uploader.stop();
}

describe('upload queue', () => {
  it('queues every received instance and commits it only when the receiver confirms it', async () => {
    const store = await fill(5);
    const preparer = new Preparer({ store, transcoder: unchanged, destinations: destinations(), log, parallel: 2 });
    await preparer.start();
    await preparer.drained();
    expect((await store.queueSummary()).byState).toEqual({ queued: 5 });
    const sender = receiver((batch) => stored(batch));
    const uploader = new Uploader({ destination: 'cloud', store, sender, log, maxBatchBytes: 25, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 10 });
    await runUntil(uploader, async () => (await store.queueSummary()).byState.committed === 5);
    expect((await store.queueSummary()).byState).toEqual({ committed: 5 });
    // bounded in bytes: the transcoder said 10 bytes each, so at most 2 per 25-byte batch
    expect(Math.max(...sender.calls.map((c) => c.length))).toBeLessThanOrEqual(2);
    const [summary] = await store.deliveries.summaries();
    expect(summary).toMatchObject({ destination: 'cloud', pending: 0, committed: 5, deadLetter: 0 });
    expect((await store.get('1.0'))?.history.map((h) => h.event)).toEqual(['stored', 'queued', 'committed']);
  });

  it('retries what the receiver did not confirm, and dead-letters permanent refusals with the reason', async () => {
    const store = await fill(3);
    await new Preparer({ store, transcoder: unchanged, destinations: destinations(), log, parallel: 1 }).start();
    await new Promise((r) => setTimeout(r, 100));
    const sender = receiver((batch, call) => ({
      httpStatus: 202,
      results: batch.flatMap((i): StowResult['results'] => {
        if (i.sopInstanceUid === '1.1') return [{ sopInstanceUid: i.sopInstanceUid, outcome: 'failed' as const, failureReason: 0xa900, retryable: false, detail: 'SOP class mismatch' }];
        if (i.sopInstanceUid === '1.2' && call === 1) return []; // not mentioned: not confirmed
        return [{ sopInstanceUid: i.sopInstanceUid, outcome: 'stored' as const, retryable: false }];
      }),
    }));
    const uploader = new Uploader({ destination: 'cloud', store, sender, log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 20 });
    await runUntil(uploader, async () => (await store.queueSummary()).byState.committed === 2);
    expect((await store.queueSummary()).byState).toEqual({ committed: 2, 'dead-letter': 1 });
    expect(await store.get('1.1')).toMatchObject({ state: 'dead-letter', reason: 'cloud: SOP class mismatch' });
    const [d] = await store.deliveries.forInstance('1.2');
    expect(d).toMatchObject({ state: 'committed', attempts: 2, lastError: expect.stringMatching(/not confirmed/) });
  });

  it('sends STAT first and holds routine traffic outside the time window', async () => {
    const store = await fill(2, 'CT');
    const dests = destinations();
    dests[0]!.statModalities = ['CT'];
    await new Preparer({ store, transcoder: unchanged, destinations: dests, log, parallel: 1 }).start();
    await new Promise((r) => setTimeout(r, 100));
    const [delivery] = await store.deliveries.forInstance('1.0');
    expect(delivery?.priority).toBe('stat');
    const sender = receiver((batch) => stored(batch));
    const closed = new Uploader({ destination: 'cloud', store, sender, log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => false, backoffMs: () => 10 });
    await runUntil(closed, async () => (await store.queueSummary()).byState.committed === 2);
    expect((await store.queueSummary()).byState.committed).toBe(2); // STAT passes a closed window
  });

  it('keeps retrying a receiver that is down, and drains once it is back', async () => {
    const store = await fill(4);
    await new Preparer({ store, transcoder: unchanged, destinations: destinations(), log, parallel: 1 }).start();
    await new Promise((r) => setTimeout(r, 100));
    let up = false;
    const sender: StowSender = {
      store: async (batch) => {
        if (!up) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        return stored(batch);
      },
    };
    const uploader = new Uploader({ destination: 'cloud', store, sender, log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 30 });
    uploader.start();
    await new Promise((r) => setTimeout(r, 300));
    expect((await store.queueSummary()).byState).toEqual({ queued: 4 });
    expect((await store.deliveries.forInstance('1.0'))[0]?.attempts).toBeGreaterThan(1);
    up = true;
    const until = Date.now() + 3000;
    while ((await store.queueSummary()).byState.committed !== 4 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await uploader.stop();
    expect((await store.queueSummary()).byState).toEqual({ committed: 4 });
  });

  it('removes local copies only of committed instances, and only after the retention time', async () => {
    const store = await fill(3);
    await new Preparer({ store, transcoder: unchanged, destinations: destinations(), log, parallel: 1 }).start();
    await new Promise((r) => setTimeout(r, 100));
    await store.transition('1.2', 'queued', 'held', 'operator-hold', 'checking');
    const uploader = new Uploader({ destination: 'cloud', store, sender: receiver((b) => stored(b)), log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 10 });
    await runUntil(uploader, async () => (await store.queueSummary()).byState.committed === 2);
    const hour = 3_600_000;
    expect((await sweepCommitted(store, hour, log)).purged).toBe(0); // too early
    const report = await sweepCommitted(store, hour, log, Date.now() + 2 * hour);
    expect(report.purged).toBe(2);
    const committed = (await store.get('1.0'))!;
    expect(committed.purgedAt).toBeDefined();
    expect(existsSync(join(store.dataDir, committed.path))).toBe(false);
    const held = (await store.get('1.2'))!;
    expect(held.state).toBe('held');
    expect(existsSync(join(store.dataDir, held.path))).toBe(true);
  });

  it('keeps one queue per destination; an instance is committed only when every destination confirmed it', async () => {
    const store = await fill(3);
    const config = loadConfig(ApplianceConfigSchema, { argv: [] });
    const base = destinations()[0]!;
    config.destinations = [
      { ...base, name: 'cloud-a', syntax: 'jpeg-ls' },
      { ...base, name: 'cloud-b', syntax: 'as-received' },
    ];
    const syntaxes: string[] = [];
    const spy: Transcoder = { ...unchanged, transcode: async (req) => (syntaxes.push(req.target), unchanged.transcode(req)) };
    await new Preparer({ store, transcoder: spy, destinations: destinationsOf(config), log, parallel: 1 }).start();
    await new Promise((r) => setTimeout(r, 100));
    expect(new Set(syntaxes)).toEqual(new Set(['jpeg-ls', 'as-received']));
    const a = new Uploader({ destination: 'cloud-a', store, sender: receiver((b) => stored(b)), log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 10 });
    await runUntil(a, async () => (await store.deliveries.summaries()).find((d) => d.destination === 'cloud-a')?.committed === 3);
    expect((await store.queueSummary()).byState).toEqual({ queued: 3 }); // cloud-b has not confirmed yet
    const b = new Uploader({ destination: 'cloud-b', store, sender: receiver((x) => stored(x)), log, maxBatchBytes: 1 << 20, maxBatchCount: 10, concurrency: 1, isOpen: () => true, backoffMs: () => 10 });
    await runUntil(b, async () => (await store.queueSummary()).byState.committed === 3);
    expect((await store.queueSummary()).byState).toEqual({ committed: 3 });
    expect((await store.get('1.0'))?.history.at(-1)).toMatchObject({ event: 'committed', detail: 'cloud-a, cloud-b' });
  });
});
