// The upload queue, kept in the store's index: one delivery per instance and destination, a
// per-destination work list ordered STAT first then oldest, and per-destination counters. An
// instance is 'queued' while any of its deliveries is pending and becomes 'committed' once every
// destination confirmed it ('dead-letter' if one refused it for good).
import type { DeliveryOutcome, DeliveryRecord, DestinationSummary, Priority } from '../../shared/types/pipeline.ts';
import type { InstanceRecord, InstanceState } from '../../shared/types/store.ts';
import type { IndexDb, Tx } from './db.ts';
import { moveState } from './records.ts';

export interface DeliveryPlan {
  destination: string;
  path: string;
  size: number;
  transferSyntaxUid: string;
  priority: Priority;
}

const dueKey = (d: Pick<DeliveryRecord, 'destination' | 'priority' | 'receivedAt' | 'instanceId'>) =>
  `${d.destination}\0${d.priority === 'stat' ? 0 : 1}\0${d.receivedAt}\0${d.instanceId}`;
const deliveryKey = (instanceId: string, destination: string) => `${instanceId}\0${destination}`;

export class Deliveries {
  private readonly db: IndexDb;
  /** Told of every instance state change made here (the store re-emits it as 'state-changed'). */
  private readonly onMoved: (record: InstanceRecord, from: InstanceState) => void;

  constructor(db: IndexDb, onMoved: (record: InstanceRecord, from: InstanceState) => void = () => undefined) {
    this.db = db;
    this.onMoved = onMoved;
  }

  /** Queues an instance for its destinations and moves it from `from` to 'queued', atomically. */
  async enqueue(instance: InstanceRecord, from: InstanceState, plans: DeliveryPlan[], detail?: string): Promise<InstanceRecord> {
    const queued = await this.db.transact(async (tx) => {
      for (const plan of plans) {
        const d: DeliveryRecord = {
          destination: plan.destination,
          instanceId: instance.id,
          sopInstanceUid: instance.header.sopInstanceUid,
          sopClassUid: instance.header.sopClassUid,
          studyInstanceUid: instance.header.studyInstanceUid,
          state: 'pending',
          priority: plan.priority,
          receivedAt: instance.receivedAt,
          path: plan.path,
          size: plan.size,
          transferSyntaxUid: plan.transferSyntaxUid,
          attempts: 0,
        };
        tx.put('deliveries', deliveryKey(instance.id, plan.destination), d);
        tx.put('due', dueKey(d), instance.id);
        await this.count(tx, d.destination, { pending: 1, pendingBytes: d.size });
      }
      return moveState(tx, instance.id, from, 'queued', 'queued', detail ?? plans.map((p) => `${p.destination}:${p.transferSyntaxUid}`).join(', '));
    });
    this.onMoved(queued, from);
    return queued;
  }

  /**
   * The next pending deliveries of a destination that are due, STAT first then oldest, up to
   * `maxBytes` (at least one) and `maxCount`.
   */
  async next(destination: string, opts: { maxBytes: number; maxCount: number; now: Date; statOnly?: boolean; skip?: ReadonlySet<string> }): Promise<DeliveryRecord[]> {
    const out: DeliveryRecord[] = [];
    let bytes = 0;
    const range = { gte: `${destination}\0`, lt: opts.statOnly ? `${destination}\0${1}` : `${destination}\x01` };
    for await (const id of this.db.values('due', range)) {
      if (opts.skip?.has(id)) continue;
      const d = await this.db.get('deliveries', deliveryKey(id, destination));
      if (!d || d.state !== 'pending') continue;
      if (d.nextAttemptAt && Date.parse(d.nextAttemptAt) > opts.now.getTime()) continue;
      if (out.length > 0 && bytes + d.size > opts.maxBytes) break;
      out.push(d);
      bytes += d.size;
      if (out.length >= opts.maxCount) break;
    }
    return out;
  }

  /** Earliest time a backed-off delivery of this destination becomes due again, if any. */
  async nextRetryAt(destination: string): Promise<number | undefined> {
    let earliest: number | undefined;
    for await (const id of this.db.values('due', { gte: `${destination}\0`, lt: `${destination}\x01` })) {
      const d = await this.db.get('deliveries', deliveryKey(id, destination));
      const at = d?.nextAttemptAt ? Date.parse(d.nextAttemptAt) : undefined;
      if (at === undefined) return Date.now();
      earliest = earliest === undefined ? at : Math.min(earliest, at);
    }
    return earliest;
  }

  /** Records what the receiver said; settles instances whose every delivery is done. */
  async settle(destination: string, outcomes: DeliveryOutcome[]): Promise<InstanceRecord[]> {
    const moved = await this.db.transact(async (tx) => {
      const settled: InstanceRecord[] = [];
      const now = new Date().toISOString();
      for (const o of outcomes) {
        const d = await tx.get('deliveries', deliveryKey(o.instanceId, destination));
        if (!d || d.state !== 'pending') continue;
        if (o.result === 'retry') {
          const retry: DeliveryRecord = { ...d, attempts: d.attempts + 1, ...(o.detail ? { lastError: o.detail } : {}) };
          if (o.nextAttemptAt) retry.nextAttemptAt = o.nextAttemptAt;
          else delete retry.nextAttemptAt;
          tx.put('deliveries', deliveryKey(o.instanceId, destination), retry);
          continue;
        }
        const done: DeliveryRecord = {
          ...d,
          state: o.result === 'committed' ? 'committed' : 'dead-letter',
          attempts: d.attempts + 1,
          ...(o.result === 'committed' ? { committedAt: now } : {}),
          ...(o.detail ? { lastError: o.detail } : {}),
        };
        delete done.nextAttemptAt;
        tx.put('deliveries', deliveryKey(o.instanceId, destination), done);
        tx.del('due', dueKey(d));
        await this.count(tx, destination, {
          pending: -1,
          pendingBytes: -d.size,
          ...(o.result === 'committed' ? { committed: 1, committedBytes: d.size } : { deadLetter: 1 }),
        });
        const record = await this.settleInstance(tx, o.instanceId, destination, done);
        if (record) settled.push(record);
      }
      return settled;
    });
    for (const record of moved) this.onMoved(record, 'queued');
    return moved;
  }

  async forInstance(instanceId: string): Promise<DeliveryRecord[]> {
    const out: DeliveryRecord[] = [];
    for await (const d of this.db.values('deliveries', { gte: `${instanceId}\0`, lt: `${instanceId}\x01` })) out.push(d);
    return out;
  }

  async summaries(): Promise<DestinationSummary[]> {
    const out: DestinationSummary[] = [];
    for await (const s of this.db.values('destinations')) {
      let oldest: string | undefined;
      for await (const key of this.db.keys('due', { gte: `${s.destination}\0`, lt: `${s.destination}\x01` })) {
        const at = key.split('\0')[2];
        if (at && (!oldest || at < oldest)) oldest = at;
      }
      out.push({ ...s, ...(oldest ? { oldestPendingAt: oldest } : {}) });
    }
    return out;
  }

  private async settleInstance(tx: Tx, instanceId: string, destination: string, done: DeliveryRecord): Promise<InstanceRecord | undefined> {
    const all: DeliveryRecord[] = [];
    for await (const d of this.db.values('deliveries', { gte: `${instanceId}\0`, lt: `${instanceId}\x01` })) {
      all.push(d.destination === destination ? done : ((await tx.get('deliveries', deliveryKey(instanceId, d.destination))) ?? d));
    }
    if (all.some((d) => d.state === 'pending')) return undefined;
    const dead = all.filter((d) => d.state === 'dead-letter');
    const record = await tx.get('instances', instanceId);
    if (!record || record.state !== 'queued') return undefined;
    return dead.length > 0
      ? moveState(tx, instanceId, 'queued', 'dead-letter', 'dead-lettered', dead.map((d) => `${d.destination}: ${d.lastError ?? 'refused'}`).join('; '))
      : moveState(tx, instanceId, 'queued', 'committed', 'committed', all.map((d) => d.destination).join(', '));
  }

  private async count(tx: Tx, destination: string, delta: Partial<Omit<DestinationSummary, 'destination' | 'oldestPendingAt'>>): Promise<void> {
    const c = (await tx.get('destinations', destination)) ?? { destination, pending: 0, pendingBytes: 0, committed: 0, committedBytes: 0, deadLetter: 0 };
    tx.put('destinations', destination, {
      destination,
      pending: c.pending + (delta.pending ?? 0),
      pendingBytes: c.pendingBytes + (delta.pendingBytes ?? 0),
      committed: c.committed + (delta.committed ?? 0),
      committedBytes: c.committedBytes + (delta.committedBytes ?? 0),
      deadLetter: c.deadLetter + (delta.deadLetter ?? 0),
    });
  }
}
