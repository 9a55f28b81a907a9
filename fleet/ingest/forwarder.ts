// Forwards newly stored instances to a PACS over STOW-RS. The queue is the index's forward table:
// an instance becomes 'pending' in the same synced batch that stores it, so a restart resumes
// where the last run stopped; a confirmation moves it to 'forwarded', a permanent refusal (or too
// many retries) to 'failed'. Sending twice is harmless: STOW of a stored UID is idempotent.
import { StowClient } from '../../shared/dicomweb/stow-client.ts';
import type { StowInstance, StowResult } from '../../shared/dicomweb/types.ts';
import type { Logger } from '../../shared/log.ts';
import { forwardOps, type IngestIndex, type Op } from './index-db.ts';
import type { ObjectStore } from './object-store.ts';
import type { ForwardEntry, ForwardOptions, StowSender } from './types.ts';

export class Forwarder {
  private readonly index: IngestIndex;
  private readonly objects: ObjectStore;
  private readonly log: Logger;
  private readonly client: StowSender;
  private readonly batchSize: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxAttempts: number;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** While the PACS is down or refusing, the whole queue waits, not just the batch that found out. */
  private holdUntil = 0;

  constructor(index: IngestIndex, objects: ObjectStore, opts: ForwardOptions, log: Logger) {
    this.index = index;
    this.objects = objects;
    this.log = log;
    this.client = opts.client ?? new StowClient(opts);
    this.batchSize = opts.batchSize ?? 20;
    this.initialDelayMs = opts.initialDelayMs ?? 2_000;
    this.maxDelayMs = opts.maxDelayMs ?? 10 * 60_000;
    this.maxAttempts = opts.maxAttempts ?? 50;
  }

  /** Runs the queue now, or right after the current run when one is under way. */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    clearTimeout(this.timer);
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    this.client.close?.();
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        while (!this.stopped && (await this.runBatch())) {
          // next batch
        }
      } catch (err) {
        // The index is unwell (disk, shutdown): try again later rather than spin.
        this.holdUntil = Date.now() + this.initialDelayMs;
        this.log.error({ err: (err as Error).message }, 'forward queue run failed');
      }
    } while (this.again && !this.stopped);
    await this.schedule();
  }

  /** Sends one batch of due instances; false when there is nothing due or the PACS is down. */
  private async runBatch(): Promise<boolean> {
    if (Date.now() < this.holdUntil) return false;
    const now = new Date();
    const uids = await this.index.dueForwards(now.toISOString(), this.batchSize);
    if (uids.length === 0) return false;
    const entries: ForwardEntry[] = [];
    const instances: StowInstance[] = [];
    const ops: Op[] = [];
    for (const uid of uids) {
      const fwd = await this.index.get('forwards', uid);
      const inst = await this.index.get('instances', uid);
      if (!fwd) continue;
      if (!inst) {
        ops.push(...forwardOps({ ...fwd, state: 'failed', updatedAt: now.toISOString(), lastError: 'instance record is gone' }, fwd));
        continue;
      }
      entries.push(fwd);
      instances.push({ sopInstanceUid: uid, sopClassUid: inst.sopClassUid, path: this.objects.absPath(inst.path), size: inst.size });
    }
    let result: StowResult;
    try {
      result = instances.length > 0 ? await this.client.store(instances) : { httpStatus: 0, results: [] };
    } catch (err) {
      // StowClient reports per instance; a throw is a bug or a substitute client: retry them all.
      const detail = `forward failed: ${(err as Error).message}`;
      result = { httpStatus: 0, results: instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, outcome: 'failed', retryable: true, detail })) };
    }
    const byUid = new Map(result.results.map((r) => [r.sopInstanceUid, r]));
    let stored = 0;
    let hold = 0;
    for (const fwd of entries) {
      const r = byUid.get(fwd.sopInstanceUid) ?? { outcome: 'failed' as const, retryable: true, detail: 'no result from the client' };
      const attempts = fwd.attempts + 1;
      const base = { sopInstanceUid: fwd.sopInstanceUid, attempts, updatedAt: new Date().toISOString() };
      let next: ForwardEntry;
      if (r.outcome === 'stored') {
        stored++;
        next = { ...base, state: 'forwarded', nextAttemptAt: fwd.nextAttemptAt };
      } else {
        const why = { lastError: r.detail ?? `HTTP ${result.httpStatus}`, ...('failureReason' in r && r.failureReason !== undefined ? { failureReason: r.failureReason } : {}) };
        const giveUp = !r.retryable || attempts >= this.maxAttempts;
        const wait = this.delay(attempts, result.retryAfterMs);
        hold = Math.max(hold, wait);
        const at = new Date(Date.now() + wait).toISOString();
        next = { ...base, ...why, state: giveUp ? 'failed' : 'pending', nextAttemptAt: giveUp ? fwd.nextAttemptAt : at };
        if (giveUp) this.log.error({ sopInstanceUid: fwd.sopInstanceUid, attempts, ...why }, 'forward given up');
      }
      ops.push(...forwardOps(next, fwd));
    }
    await this.index.commit(ops);
    this.log.info({ sent: instances.length, stored, httpStatus: result.httpStatus }, 'forwarded batch');
    // A batch that got nothing through says the PACS is down or refusing: wait for the backoff.
    if (stored === 0 && hold > 0) this.holdUntil = Date.now() + hold;
    return stored > 0 || instances.length === 0;
  }

  /** Exponential backoff with jitter, never sooner than the PACS's Retry-After. */
  private delay(attempts: number, retryAfterMs = 0): number {
    const exp = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.min(attempts - 1, 30));
    return Math.max(retryAfterMs, Math.round(exp * (0.8 + Math.random() * 0.4)));
  }

  private async schedule(): Promise<void> {
    if (this.stopped) return;
    const next = await this.index.nextDue().catch(() => undefined);
    if (next === undefined) return;
    const wait = Math.min(this.maxDelayMs, Math.max(0, Date.parse(next) - Date.now(), this.holdUntil - Date.now()));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.kick(), wait);
    // The queue must not keep a process alive that is otherwise done (tests, a stopping server).
    this.timer.unref();
  }
}
