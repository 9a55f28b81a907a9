// Commands to devices: a record per command (pending until the box answers or the timeout passes),
// the request published QoS 1 and not retained (a box that was offline gets it from its session
// and answers 'expired' once expiresAt has passed), and waiters for callers that want the answer.
import { randomUUID } from 'node:crypto';
import type { CommandRecord } from '../../shared/fleet/api.ts';
import type { CommandRequest, CommandResponse } from '../../shared/fleet/messages.ts';
import { topics } from '../../shared/fleet/topics.ts';
import type { Logger } from '../../shared/log.ts';
import type { FleetBus } from '../types.ts';
import type { CommandLog } from './command-log.ts';
import type { FleetMetrics } from './metrics.ts';

interface Pending {
  record: CommandRecord;
  timer: NodeJS.Timeout;
  waiters: Array<(r: CommandRecord) => void>;
}

export class CommandManager {
  private readonly pending = new Map<string, Pending>();
  private readonly log: CommandLog;
  private readonly bus: FleetBus;
  private readonly metrics: FleetMetrics;
  private readonly logger: Logger;
  private readonly onFinal: (r: CommandRecord) => void;

  constructor(opts: { log: CommandLog; bus: FleetBus; metrics: FleetMetrics; logger: Logger; onFinal: (r: CommandRecord) => void }) {
    this.log = opts.log;
    this.bus = opts.bus;
    this.metrics = opts.metrics;
    this.logger = opts.logger;
    this.onFinal = opts.onFinal;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Re-arms the timers of commands that were pending when the fleet stopped. */
  async resume(nowMs = Date.now()): Promise<void> {
    for (const rec of await this.log.pending()) {
      const left = Date.parse(rec.expiresAt) - nowMs;
      if (left <= 0) await this.finish(rec, { status: 'timed-out', error: 'no answer before the fleet restarted and the timeout passed' });
      else this.arm(rec, left);
    }
  }

  async send(deviceId: string, name: string, args: Record<string, unknown>, by: string, timeoutMs: number, nowMs = Date.now()): Promise<CommandRecord> {
    const record: CommandRecord = {
      id: randomUUID(),
      deviceId,
      name,
      args,
      status: 'pending',
      issuedBy: by,
      issuedAt: new Date(nowMs).toISOString(),
      expiresAt: new Date(nowMs + timeoutMs).toISOString(),
    };
    await this.log.save(record, true);
    this.arm(record, timeoutMs);
    const req: CommandRequest = { id: record.id, name, args, issuedAt: record.issuedAt, expiresAt: record.expiresAt };
    try {
      await this.bus.publish(topics.commandRequest(deviceId), req, { qos: 1, retain: false });
    } catch (err) {
      return this.finish(record, { status: 'error', error: `could not publish the command: ${(err as Error).message}` });
    }
    return { ...record };
  }

  /** A device's answer. Only the device the command went to may answer it. */
  async answer(deviceId: string, res: CommandResponse): Promise<CommandRecord | undefined> {
    const p = this.pending.get(res.id);
    if (!p) {
      const rec = await this.log.get(res.id);
      if (rec && rec.deviceId === deviceId && rec.status === 'timed-out' && !rec.answeredAt) {
        // Too late to count, but what the box did is still worth keeping.
        const late: CommandRecord = { ...rec, answeredAt: res.at, ...(res.result !== undefined ? { result: res.result } : {}), error: `${rec.error ?? 'timed out'}; late answer: ${res.status}${res.error ? ` (${res.error})` : ''}` };
        await this.log.save(late, false);
        return late;
      }
      this.metrics.ignored.inc({ reason: 'stray-answer' });
      return undefined;
    }
    if (p.record.status !== 'pending') {
      // Already settled (timed out a moment ago) and being saved: the first outcome stands.
      this.metrics.ignored.inc({ reason: 'stray-answer' });
      return undefined;
    }
    if (p.record.deviceId !== deviceId) {
      this.metrics.ignored.inc({ reason: 'foreign-answer' });
      this.logger.warn({ deviceId, cmdId: res.id, owner: p.record.deviceId }, 'a device answered a command sent to another device; ignored');
      return undefined;
    }
    return this.finish(p.record, {
      status: res.status,
      answeredAt: res.at,
      ...(res.result !== undefined ? { result: res.result } : {}),
      ...(res.error !== undefined ? { error: res.error } : {}),
    });
  }

  /** The record once final, or as it stands after `ms`. */
  async waitFor(cmdId: string, ms: number): Promise<CommandRecord | undefined> {
    const p = this.pending.get(cmdId);
    if (!p) return this.log.get(cmdId);
    if (p.record.status !== 'pending') return { ...p.record };
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        p.waiters.splice(p.waiters.indexOf(done), 1);
        resolve({ ...p.record });
      }, ms);
      const done = (r: CommandRecord): void => {
        clearTimeout(t);
        resolve(r);
      };
      p.waiters.push(done);
    });
  }

  async get(cmdId: string): Promise<CommandRecord | undefined> {
    const p = this.pending.get(cmdId);
    return p ? { ...p.record } : this.log.get(cmdId);
  }

  stop(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  private arm(record: CommandRecord, ms: number): void {
    const timer = setTimeout(() => {
      void this.finish(record, { status: 'timed-out', error: `no answer within ${Date.parse(record.expiresAt) - Date.parse(record.issuedAt)} ms` }).catch((err: unknown) =>
        this.logger.error({ err, cmdId: record.id }, 'could not store a timed-out command'),
      );
    }, ms);
    timer.unref();
    this.pending.set(record.id, { record, timer, waiters: [] });
  }

  private async finish(record: CommandRecord, change: Partial<CommandRecord>): Promise<CommandRecord> {
    const p = this.pending.get(record.id);
    const final: CommandRecord = { ...record, ...change };
    // Readers (get, waitFor) see the final record while it is being saved; it leaves the pending
    // map only once the log has it, so no reader can fall back to the stale saved 'pending' copy.
    if (p) {
      clearTimeout(p.timer);
      p.record = final;
    }
    this.metrics.commands.inc({ status: final.status });
    try {
      await this.log.save(final, false);
    } finally {
      if (this.pending.get(record.id) === p) this.pending.delete(record.id);
      for (const w of p?.waiters ?? []) w(final);
      this.onFinal(final);
    }
    return final;
  }
}
