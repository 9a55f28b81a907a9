// Upload bandwidth cap for one destination: a token bucket shared by every request body sent
// there, so concurrent uploads split the clinic's allowance instead of each taking all of it.
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ThrottleOptions {
  /** Sustained rate; 0 or undefined means unlimited. */
  bytesPerSecond?: number;
  /** Bytes that may go out at once after a quiet spell (default: a tenth of a second's worth, at least 64 KiB). */
  burstBytes?: number;
  /** Clock in milliseconds, for tests. */
  now?: () => number;
}

const MIN_BURST = 64 * 1024;
// Chunks are cut so each wait is short: the socket then sees a steady trickle rather than long
// silences (which an inactivity timeout would take for a dead peer) between large bursts.
const MAX_SLICE = 16 * 1024;
const MIN_SLICE = 1024;

export class Throttle {
  #rate = 0;
  #burst = MIN_BURST;
  #burstOption: number | undefined;
  /** May go negative: bytes already granted but not yet earned, which later takers wait out. */
  #tokens = 0;
  #last: number;
  readonly #now: () => number;

  constructor(opts: ThrottleOptions = {}) {
    this.#now = opts.now ?? (() => performance.now());
    this.#last = this.#now();
    this.setRate(opts.bytesPerSecond, opts.burstBytes);
    this.#tokens = this.#burst;
  }

  get bytesPerSecond(): number {
    return this.#rate;
  }

  /**
   * Changes the rate for bytes not yet granted. Waits already scheduled keep their old deadline,
   * which is at most one slice (16 KiB) at the old rate.
   */
  setRate(bytesPerSecond?: number, burstBytes?: number): void {
    for (const [name, v] of [['bytesPerSecond', bytesPerSecond], ['burstBytes', burstBytes]] as const) {
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new Error(`Throttle ${name} must be a finite number >= 0, got ${v}`);
    }
    this.#refill();
    const wasUnlimited = this.#rate <= 0;
    this.#rate = bytesPerSecond ?? 0;
    if (burstBytes !== undefined) this.#burstOption = burstBytes;
    this.#burst = this.#burstOption || Math.max(MIN_BURST, this.#rate / 10);
    // Leaving "unlimited" starts from a full bucket, not from a debt run up before the lift.
    this.#tokens = wasUnlimited ? this.#burst : Math.min(this.#tokens, this.#burst);
  }

  /**
   * Grants `bytes` now and returns how long (ms) the caller must wait before sending them, so that
   * everything granted so far stays within the rate. Grants are served in call order.
   */
  reserve(bytes: number): number {
    if (this.#rate <= 0) return 0;
    this.#refill();
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.#rate) * 1000;
  }

  /** A stream passing `body` through at the bucket's pace; errors and destruction go both ways. */
  throttle(body: Readable): Readable {
    const self = this;
    const out = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
        self.#pace(this, chunk).then(() => done(), done);
      },
    });
    pipeline(body, out, () => {
      // pipeline already destroys `out` with the source's error; nothing further to report here.
    });
    return out;
  }

  async #pace(out: Transform, chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length && !out.destroyed; ) {
      const slice = chunk.subarray(at, at + this.#sliceSize());
      at += slice.length;
      const wait = this.reserve(slice.length);
      if (wait > 0) await sleep(wait);
      if (!out.destroyed) out.push(slice);
    }
  }

  #sliceSize(): number {
    // About 1/50 s at the current rate; an unlimited bucket passes chunks whole.
    if (this.#rate <= 0) return Number.MAX_SAFE_INTEGER;
    return Math.min(MAX_SLICE, Math.max(MIN_SLICE, Math.floor(this.#rate / 50)));
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#last);
    this.#last = now;
    if (this.#rate > 0) this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed / 1000) * this.#rate);
  }
}
