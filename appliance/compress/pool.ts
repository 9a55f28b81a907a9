// Transcoder that runs transcodeFile in a small pool of worker threads, so compression never
// competes with the receive path for the main event loop. Each worker loads the WASM codecs once.
// A job whose worker dies is rejected with what happened; the worker is replaced.
import { availableParallelism } from 'node:os';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { TranscodeRequest, TranscodeResult, Transcoder } from '../../shared/types/pipeline.ts';
import type { JobMessage, ReplyMessage } from './worker.ts';

export interface TranscodePoolOptions {
  /** Worker threads; default max(1, cores - 1), leaving a core to the receive path. */
  size?: number;
  /** Worker entry; default ./worker.ts. */
  workerUrl?: URL;
  /** Per-worker heap limits: a worker that exceeds them dies and only its job fails. */
  resourceLimits?: ResourceLimits;
}

interface Job {
  id: number;
  request: TranscodeRequest;
  resolve(result: TranscodeResult): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job?: Job;
  error?: Error;
}

/** Workers that die before they are ready this many times in a row mean the entry is broken. */
const MAX_FAILED_STARTS = 3;

export class TranscodePool implements Transcoder {
  readonly size: number;
  private readonly url: URL;
  private readonly resourceLimits: ResourceLimits | undefined;
  private readonly slots = new Set<Slot>();
  private readonly queue: Job[] = [];
  private nextId = 1;
  private failedStarts = 0;
  private closed = false;
  /** Why workers cannot start, once MAX_FAILED_STARTS of them died before being ready. */
  private broken: string | undefined;

  constructor(opts: TranscodePoolOptions = {}) {
    this.size = Math.max(1, Math.floor(opts.size ?? availableParallelism() - 1));
    this.url = opts.workerUrl ?? new URL('./worker.ts', import.meta.url);
    this.resourceLimits = opts.resourceLimits;
    for (let i = 0; i < this.size; i++) this.spawn();
  }

  transcode(request: TranscodeRequest): Promise<TranscodeResult> {
    if (this.closed) return Promise.reject(new Error(`transcode pool is closed (${describe(request)})`));
    if (this.broken !== undefined) return Promise.reject(this.brokenError(request));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, request, resolve, reject });
      this.dispatch();
    });
  }

  /** Rejects queued and running jobs and terminates the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const gone = new Error('transcode pool closed');
    for (const job of this.queue.splice(0)) job.reject(new Error(`${gone.message} before ${describe(job.request)} started`));
    const slots = [...this.slots];
    for (const s of slots) {
      s.job?.reject(new Error(`${gone.message} while ${describe(s.job.request)} was running`));
      s.job = undefined;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
    this.slots.clear();
  }

  private spawn(): void {
    const worker = new Worker(this.url, { resourceLimits: this.resourceLimits });
    const slot: Slot = { worker, ready: false };
    this.slots.add(slot);
    worker.unref();
    worker.on('message', (msg: ReplyMessage) => this.onMessage(slot, msg));
    worker.on('messageerror', (err) => (slot.error = err));
    // 'exit' always follows 'error'; the job is settled there, with the error as the cause.
    worker.on('error', (err) => (slot.error = err));
    worker.on('exit', (code) => this.onExit(slot, code));
  }

  private onMessage(slot: Slot, msg: ReplyMessage): void {
    if ('ready' in msg) {
      slot.ready = true;
      this.failedStarts = 0;
      this.dispatch();
      return;
    }
    const job = slot.job;
    if (!job || job.id !== msg.id) return;
    slot.job = undefined;
    slot.worker.unref();
    if ('result' in msg) job.resolve(msg.result);
    else job.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name, code: msg.error.code, workerStack: msg.error.stack }));
    this.dispatch();
  }

  private onExit(slot: Slot, code: number): void {
    this.slots.delete(slot);
    if (this.closed) return;
    const why = slot.error ? `${slot.error.name}: ${slot.error.message}` : `exit code ${code}`;
    if (slot.job) {
      slot.job.reject(new Error(`transcode worker died (${why}) while running ${describe(slot.job.request)}`, { cause: slot.error }));
      slot.job = undefined;
    }
    if (!slot.ready && ++this.failedStarts >= MAX_FAILED_STARTS) {
      // Respawning a worker that cannot start would loop forever: fail what waits, and what comes.
      this.broken = why;
      for (const job of this.queue.splice(0)) job.reject(this.brokenError(job.request));
      return;
    }
    this.spawn();
    this.dispatch();
  }

  private brokenError(r: TranscodeRequest): Error {
    return new Error(`transcode workers fail to start (${this.broken}); ${describe(r)} not run`);
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      // A busy worker keeps the process alive until its job settles; idle ones do not.
      slot.worker.ref();
      slot.worker.postMessage({ id: job.id, request: job.request } satisfies JobMessage);
    }
  }
}

function describe(r: TranscodeRequest): string {
  return `${r.target} of ${r.inputPath}`;
}
