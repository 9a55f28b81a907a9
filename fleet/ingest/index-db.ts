// The receiver's LevelDB index: instances by UID, conflicting versions, a study index for QIDO, and
// the forward queue. Writes are synced (the receiver has no recovery pass that could rebuild a
// lost record), and batches from concurrent requests share one sync (group commit).
import { Level } from 'level';
import type { ForwardEntry, ForwardSummary, InstanceEntry } from './types.ts';

interface Tables {
  /** uid → the record of that UID */
  instances: InstanceEntry;
  /** `<uid>\0<hash>` → a conflicting version */
  conflicts: InstanceEntry;
  /** `<study>\0<series>\0<uid>` → uid */
  byStudy: string;
  /** uid → forward state */
  forwards: ForwardEntry;
  /** `<nextAttemptAt>\0<uid>` → uid, pending forwards only, so due ones are a range read */
  due: string;
}
type Table = keyof Tables;

export type Op = { [T in Table]: { table: T; key: string; value: Tables[T] } | { table: T; key: string; del: true } }[Table];

interface Pending {
  ops: Op[];
  resolve: () => void;
  reject: (err: Error) => void;
}

function sub(level: Level<string, unknown>, name: string) {
  return level.sublevel<string, unknown>(name, { valueEncoding: 'json' });
}

export class IngestIndex {
  private readonly level: Level<string, unknown>;
  private readonly tables: Record<Table, ReturnType<typeof sub>>;
  private readonly locks = new Map<string, Promise<void>>();
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;

  constructor(path: string) {
    this.level = new Level<string, unknown>(path, { valueEncoding: 'json' });
    const s = (name: string) => sub(this.level, name);
    this.tables = { instances: s('i'), conflicts: s('c'), byStudy: s('s'), forwards: s('f'), due: s('q') };
  }

  async open(): Promise<void> {
    await this.level.open();
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.level.close();
  }

  async get<T extends Table>(table: T, key: string): Promise<Tables[T] | undefined> {
    return (await this.tables[table].get(key)) as Tables[T] | undefined;
  }

  async *values<T extends Table>(table: T, range: { gte?: string; lt?: string; limit?: number } = {}): AsyncGenerator<Tables[T]> {
    for await (const v of this.tables[table].values(range)) yield v as Tables[T];
  }

  /**
   * Runs `fn` while holding the UID: a read-decide-write on one UID (dedupe, conflict) must not
   * interleave with another request carrying the same UID.
   */
  async withUid<R>(uid: string, fn: () => Promise<R>): Promise<R> {
    const before = this.locks.get(uid);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.locks.set(uid, mine);
    if (before) await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(uid) === mine) this.locks.delete(uid);
    }
  }

  /** Resolves once the ops are on disk (LevelDB log fsynced). All or nothing. */
  commit(ops: Op[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, resolve, reject });
      this.writing ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const jobs = this.queue;
      this.queue = [];
      const batch = jobs.flatMap((j) => j.ops).map((op) =>
        'del' in op
          ? { type: 'del' as const, key: op.key, sublevel: this.tables[op.table] }
          : { type: 'put' as const, key: op.key, value: op.value as unknown, sublevel: this.tables[op.table] },
      );
      try {
        await this.level.batch(batch, { sync: true });
        for (const j of jobs) j.resolve();
      } catch (err) {
        const e = new Error(`index write of ${batch.length} ops failed: ${(err as Error).message}`, { cause: err });
        for (const j of jobs) j.reject(e);
      }
    }
    this.writing = undefined;
  }

  /** Instances of a study in series order; `limit`/`offset` page through them (QIDO). */
  async studyInstances(studyUid: string, offset = 0, limit = Infinity): Promise<InstanceEntry[]> {
    const out: InstanceEntry[] = [];
    let skipped = 0;
    for await (const uid of this.values('byStudy', { gte: `${studyUid}\0`, lt: `${studyUid}\x01` })) {
      if (skipped++ < offset) continue;
      if (out.length >= limit) break;
      const entry = await this.get('instances', uid);
      if (entry) out.push(entry);
    }
    return out;
  }

  /** UIDs whose forward is due at `now`, oldest first. */
  async dueForwards(now: string, limit: number): Promise<string[]> {
    const out: string[] = [];
    for await (const uid of this.values('due', { lt: `${now}\x01`, limit })) out.push(uid);
    return out;
  }

  /** Earliest pending forward time, for the forwarder's timer. */
  async nextDue(): Promise<string | undefined> {
    for await (const key of this.tables.due.keys({ limit: 1 })) return key.split('\0')[0];
    return undefined;
  }

  async forwardSummary(): Promise<ForwardSummary> {
    const out: ForwardSummary = { pending: 0, forwarded: 0, failed: 0 };
    for await (const f of this.values('forwards')) out[f.state]++;
    return out;
  }
}

/** Ops that move a forward to its next state, keeping the due index in step. */
export function forwardOps(next: ForwardEntry, previous?: ForwardEntry): Op[] {
  const ops: Op[] = [];
  if (previous?.state === 'pending') ops.push({ table: 'due', key: `${previous.nextAttemptAt}\0${previous.sopInstanceUid}`, del: true });
  ops.push({ table: 'forwards', key: next.sopInstanceUid, value: next });
  if (next.state === 'pending') ops.push({ table: 'due', key: `${next.nextAttemptAt}\0${next.sopInstanceUid}`, value: next.sopInstanceUid });
  return ops;
}
