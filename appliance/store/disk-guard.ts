// Keeps the box from acknowledging what it cannot write: above the high-water mark ingest refuses
// (C-STORE 0xA700, watcher pauses) and resumes by itself once space returns.
import { EventEmitter } from 'node:events';
import { statfs } from 'node:fs/promises';
import type { Logger } from '../../shared/log.ts';

export interface DiskGuardOptions {
  path: string;
  highWaterPercent: number;
  minFreeBytes: number;
  intervalMs?: number;
  log: Logger;
  /** For tests: replaces statfs. */
  probe?: () => Promise<{ freeBytes: number; totalBytes: number }>;
}

export interface DiskState {
  ok: boolean;
  freeBytes: number;
  totalBytes: number;
  usedPercent: number;
  reason?: string;
}

export class DiskGuard extends EventEmitter<{ change: [DiskState] }> {
  private readonly opts: DiskGuardOptions;
  private state: DiskState = { ok: true, freeBytes: 0, totalBytes: 0, usedPercent: 0 };
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: DiskGuardOptions) {
    super();
    // A copy: setThresholds changes it.
    this.opts = { ...opts };
  }

  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** New thresholds (remote config); the next check applies them. */
  setThresholds(highWaterPercent: number, minFreeBytes: number): void {
    this.opts.highWaterPercent = highWaterPercent;
    this.opts.minFreeBytes = minFreeBytes;
  }

  get current(): DiskState {
    return this.state;
  }

  get ok(): boolean {
    return this.state.ok;
  }

  async check(): Promise<DiskState> {
    let freeBytes: number;
    let totalBytes: number;
    try {
      ({ freeBytes, totalBytes } = this.opts.probe ? await this.opts.probe() : await fsProbe(this.opts.path));
    } catch (err) {
      this.opts.log.error({ err, path: this.opts.path }, 'disk probe failed');
      return this.state;
    }
    const usedPercent = totalBytes > 0 ? (100 * (totalBytes - freeBytes)) / totalBytes : 100;
    let reason: string | undefined;
    if (usedPercent >= this.opts.highWaterPercent) reason = `disk ${usedPercent.toFixed(1)}% used, high-water mark ${this.opts.highWaterPercent}%`;
    else if (freeBytes < this.opts.minFreeBytes) reason = `only ${freeBytes} bytes free, minimum ${this.opts.minFreeBytes}`;
    const next: DiskState = { ok: !reason, freeBytes, totalBytes, usedPercent, ...(reason ? { reason } : {}) };
    const changed = next.ok !== this.state.ok;
    this.state = next;
    if (changed) {
      if (next.ok) this.opts.log.info({ freeBytes }, 'disk space back: ingest resumes');
      else this.opts.log.warn({ reason }, 'disk above high-water mark: ingest refuses');
      this.emit('change', next);
    }
    return next;
  }
}

async function fsProbe(path: string): Promise<{ freeBytes: number; totalBytes: number }> {
  const s = await statfs(path);
  // bavail, not bfree: blocks reserved for root are not ours to fill.
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}
