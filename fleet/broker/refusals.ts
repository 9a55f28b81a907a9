// Counts every refusal the broker makes (connects, publishes, subscribes, TLS handshakes) and logs
// them at warn — but at most `burst` lines per window, so a misbehaving box or a scanner hammering
// the port cannot flood the log. Suppressed lines are summed into the next one that gets through.
import type { Logger } from '../../shared/log.ts';

export class RefusalLog {
  readonly #log: Logger;
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #counts = new Map<string, number>();
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;

  constructor(log: Logger, opts: { burst?: number; windowMs?: number } = {}) {
    this.#log = log;
    this.#burst = opts.burst ?? 20;
    this.#windowMs = opts.windowMs ?? 60_000;
  }

  /** `kind` is the counter key, e.g. 'connect:revoked' or 'publish'. */
  note(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + 1);
    const now = Date.now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.#burst) {
      this.#suppressed++;
      return;
    }
    this.#inWindow++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.#log.warn({ refusal: kind, ...fields, ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}) }, msg);
  }

  counts(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}
