// Drains one destination's queue over STOW-RS: batches bounded in bytes and count, a few batches in
// flight, STAT first, routine traffic only inside the destination's time windows, and every
// instance settled by what the receiver said about it. Failures that may pass are retried with
// backoff, without limit; permanent refusals are dead-lettered with the receiver's reason.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { StowInstance, StowResult } from '../../shared/dicomweb/types.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeliveryOutcome, DeliveryRecord } from '../../shared/types/pipeline.ts';
import type { Store } from '../store/store.ts';

export interface StowSender {
  store(instances: StowInstance[], opts?: { throttle?: (body: Readable) => Readable }): Promise<StowResult>;
}

export interface UploaderOptions {
  destination: string;
  store: Store;
  sender: StowSender;
  log: Logger;
  maxBatchBytes: number;
  maxBatchCount: number;
  concurrency: number;
  /** Shared bandwidth budget of the destination. */
  throttle?: (body: Readable) => Readable;
  /** Whether routine traffic may flow now. */
  isOpen: (now: Date) => boolean;
  /** Delay before attempt n+1 after n failures. */
  backoffMs: (attempts: number) => number;
  /** Longest sleep when nothing is due (new work wakes the uploader at once). */
  idleMs?: number;
  onSent?: (bytes: number, outcomes: DeliveryOutcome[]) => void;
}

export class Uploader {
  private readonly opts: UploaderOptions;
  private readonly inFlight = new Set<string>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private batchBytes: number;
  private readonly sending = new Set<Promise<void>>();
  /**
   * When the receiver as a whole is unreachable or failing, the destination pauses (backoff on
   * consecutive failed batches) instead of each instance backing off on its own: once the
   * receiver answers again, the whole queue flows at once.
   */
  private failedBatches = 0;
  private pausedUntil = 0;

  constructor(opts: UploaderOptions) {
    this.opts = opts;
    this.batchBytes = opts.maxBatchBytes;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    await Promise.all(this.sending);
  }

  /** New work was queued: look now instead of at the next timer. */
  wake(): void {
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        while (this.running && this.sending.size < this.opts.concurrency && Date.now() >= this.pausedUntil) {
          const now = new Date();
          const batch = await this.opts.store.deliveries.next(this.opts.destination, {
            maxBytes: this.batchBytes,
            maxCount: this.opts.maxBatchCount,
            now,
            statOnly: !this.opts.isOpen(now),
            skip: this.inFlight,
          });
          if (batch.length === 0) break;
          for (const d of batch) this.inFlight.add(d.instanceId);
          const p = this.send(batch)
            .catch((err: unknown) => this.opts.log.error({ err, destination: this.opts.destination }, 'settling a batch failed; it is sent again'))
            .finally(() => {
            for (const d of batch) this.inFlight.delete(d.instanceId);
            this.sending.delete(p);
            this.wake();
          });
          this.sending.add(p);
        }
      } catch (err) {
        this.opts.log.error({ err }, 'reading the upload queue failed');
      }
      await this.sleep();
    }
  }

  private async sleep(): Promise<void> {
    const next = await this.opts.store.deliveries.nextRetryAt(this.opts.destination).catch(() => undefined);
    const idle = this.opts.idleMs ?? 5000;
    const due = Math.max(next ?? 0, this.pausedUntil);
    const wait = next === undefined && this.pausedUntil <= Date.now() ? idle : Math.min(idle, Math.max(50, due - Date.now()));
    // stop() may have come while the queue was read above, before there was a sleep to cut short.
    if (!this.running) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeUp = undefined;
  }

  private async send(batch: DeliveryRecord[]): Promise<void> {
    const dataDir = this.opts.store.dataDir;
    const outcomes: DeliveryOutcome[] = [];
    const sendable: DeliveryRecord[] = [];
    for (const d of batch) {
      // A file that is gone cannot become sendable by waiting: say so instead of retrying forever.
      const size = await stat(join(dataDir, d.path)).then((s) => s.size, () => undefined);
      if (size === undefined) outcomes.push({ instanceId: d.instanceId, result: 'dead-letter', detail: `local file ${d.path} is missing` });
      else sendable.push({ ...d, size });
    }
    if (sendable.length > 0) {
      let result: StowResult;
      try {
        result = await this.opts.sender.store(
          sendable.map((d) => ({ sopInstanceUid: d.sopInstanceUid, sopClassUid: d.sopClassUid, path: join(dataDir, d.path), size: d.size })),
          this.opts.throttle ? { throttle: this.opts.throttle } : {},
        );
      } catch (err) {
        result = { httpStatus: 0, results: sendable.map((d) => ({ sopInstanceUid: d.sopInstanceUid, outcome: 'failed', retryable: true, detail: (err as Error).message })) };
      }
      outcomes.push(...this.judge(sendable, result));
    }
    await this.opts.store.deliveries.settle(this.opts.destination, outcomes);
    const committed = outcomes.filter((o) => o.result === 'committed').length;
    const bytes = sendable.reduce((n, d) => n + d.size, 0);
    this.opts.onSent?.(bytes, outcomes);
    this.opts.log.info({ destination: this.opts.destination, sent: sendable.length, committed, bytes }, 'batch settled');
  }

  private judge(batch: DeliveryRecord[], result: StowResult): DeliveryOutcome[] {
    const byUid = new Map(result.results.map((r) => [r.sopInstanceUid, r]));
    const anyStored = result.results.some((r) => r.outcome === 'stored');
    const receiverDown = !anyStored && (result.httpStatus === 0 || result.httpStatus >= 500 || result.httpStatus === 429);
    if (receiverDown) {
      this.failedBatches++;
      this.pausedUntil = Date.now() + Math.max(this.opts.backoffMs(this.failedBatches - 1), result.retryAfterMs ?? 0);
    } else if (anyStored) {
      this.failedBatches = 0;
      this.pausedUntil = 0;
    }
    const bytes = batch.reduce((n, d) => n + d.size, 0);
    // Too large (413), or refused whole for a part it does not name (400): smaller batches until
    // the bad instance travels alone and can be judged on its own; grow back after a clean batch.
    if ((result.httpStatus === 413 || result.httpStatus === 400) && batch.length > 1) this.batchBytes = Math.max(1, Math.floor(bytes / 2));
    else if (result.httpStatus === 200) this.batchBytes = Math.min(this.opts.maxBatchBytes, this.batchBytes * 2);
    return batch.map((d) => {
      const r = byUid.get(d.sopInstanceUid);
      if (r?.outcome === 'stored') return { instanceId: d.instanceId, result: 'committed' };
      const detail = r?.detail ?? `not confirmed by the receiver (HTTP ${result.httpStatus})`;
      if (r && !r.retryable) return { instanceId: d.instanceId, result: 'dead-letter', detail };
      // A receiver that is down says nothing about this instance: it waits with the destination.
      if (receiverDown) return { instanceId: d.instanceId, result: 'retry', detail };
      const delay = Math.max(this.opts.backoffMs(d.attempts), result.retryAfterMs ?? 0);
      return { instanceId: d.instanceId, result: 'retry', detail, nextAttemptAt: new Date(Date.now() + delay).toISOString() };
    });
  }
}
