// The box's retained update status: every phase change goes out at once (and is kept on disk so a
// restart reports it again until something replaces it); download progress at most once per
// interval, the last one always. `at` never repeats or goes back on this box's clock, because the
// fleet ignores a report that is not newer than the last one it saw.
import type { UpdatePhase, UpdateStatus } from '../../../shared/update/messages.ts';

export interface StatusChange {
  rolloutId: string | null;
  version: string | null;
  phase: UpdatePhase;
  reason?: string | undefined;
  progress?: { bytes: number; total: number } | undefined;
}

/** Is `next` only a progress step of `prev` (same offer, same phase, same reason)? */
export function isProgressOnly(prev: StatusChange | undefined, next: StatusChange): boolean {
  return (
    prev !== undefined &&
    prev.phase === next.phase &&
    prev.rolloutId === next.rolloutId &&
    prev.version === next.version &&
    (prev.reason ?? '') === (next.reason ?? '') &&
    next.progress !== undefined
  );
}

/** When to send: now, or after `delayMs` (a progress step too soon after the last send). */
export function sendTiming(prev: StatusChange | undefined, next: StatusChange, lastSentMs: number, nowMs: number, intervalMs: number): { now: true } | { now: false; delayMs: number } {
  if (!isProgressOnly(prev, next)) return { now: true };
  if (next.progress && next.progress.bytes >= next.progress.total) return { now: true };
  const due = lastSentMs + intervalMs;
  return nowMs >= due ? { now: true } : { now: false, delayMs: due - nowMs };
}

/** A strictly increasing ISO time on this clock. */
export function nextAt(lastMs: number, nowMs: number): { ms: number; iso: string } {
  const ms = Math.max(nowMs, lastMs + 1);
  return { ms, iso: new Date(ms).toISOString() };
}

export interface ReporterOptions {
  send: (status: UpdateStatus) => Promise<void>;
  /** Durable copy of phase changes (not of progress steps). */
  persist: (status: UpdateStatus) => Promise<void>;
  runningVersion: string;
  failedVersions: () => string[];
  progressIntervalMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

export class StatusReporter {
  private readonly opts: ReporterOptions;
  private change: StatusChange | undefined;
  private status: UpdateStatus | undefined;
  private lastAtMs = 0;
  private lastSentMs = -Infinity;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: ReporterOptions, initial?: UpdateStatus) {
    this.opts = opts;
    if (initial) {
      this.status = { ...initial, runningVersion: opts.runningVersion, failedVersions: opts.failedVersions() };
      this.change = { rolloutId: initial.rolloutId, version: initial.version, phase: initial.phase, reason: initial.reason, progress: initial.progress };
      const at = Date.parse(initial.at);
      if (Number.isFinite(at)) this.lastAtMs = at;
    }
  }

  get current(): UpdateStatus | undefined {
    return this.status;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Records the change and sends it now or soon; resolves once a phase change is persisted. */
  async report(next: StatusChange): Promise<UpdateStatus> {
    const timing = sendTiming(this.change, next, this.lastSentMs, this.now(), this.opts.progressIntervalMs ?? 2000);
    const progressOnly = isProgressOnly(this.change, next);
    const at = nextAt(this.lastAtMs, this.now());
    this.lastAtMs = at.ms;
    this.change = next;
    const status: UpdateStatus = {
      rolloutId: next.rolloutId,
      version: next.version,
      phase: next.phase,
      ...(next.reason ? { reason: next.reason } : {}),
      ...(next.progress ? { progress: next.progress } : {}),
      runningVersion: this.opts.runningVersion,
      failedVersions: this.opts.failedVersions(),
      at: at.iso,
    };
    this.status = status;
    if (!progressOnly) await this.opts.persist(status).catch((err: unknown) => this.opts.onError?.(err));
    if (timing.now) {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.flush();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, timing.delayMs);
    }
    return status;
  }

  /** Sends the current status again (after a reconnect: the broker may have lost the retained one). */
  async resend(): Promise<void> {
    if (this.status) await this.flush();
  }

  private async flush(): Promise<void> {
    const s = this.status;
    if (!s) return;
    this.lastSentMs = this.now();
    await this.opts.send(s).catch((err: unknown) => this.opts.onError?.(err));
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
