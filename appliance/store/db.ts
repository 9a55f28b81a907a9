// The LevelDB index and its write path. Writers never touch LevelDB directly: they run
// transactions, and every transaction queued while a batch is being written joins the next batch
// (group commit), so reads-modify-writes of shared records (studies, counters) never interleave.
import { Level } from 'level';
import type { DeliveryRecord, DestinationSummary } from '../../shared/types/pipeline.ts';
import type { InstanceRecord, InstanceState, StudyRecord } from '../../shared/types/store.ts';

export interface Counters {
  byState: Partial<Record<InstanceState, number>>;
  bytesByState: Partial<Record<InstanceState, number>>;
}

interface Tables {
  instances: InstanceRecord;
  studies: StudyRecord;
  /** `<state>\0<receivedAt>\0<id>` → id: stages take work oldest first per state. */
  byState: string;
  /** `<studyUid>\0<seriesUid>\0<id>` → id */
  byStudy: string;
  meta: Counters;
  /** `<instanceId>\0<destination>` → delivery */
  deliveries: DeliveryRecord;
  /** `<destination>\0<0 stat|1 routine>\0<receivedAt>\0<instanceId>` → instanceId, pending only */
  due: string;
  /** destination → its counters */
  destinations: DestinationSummary;
}
export type Table = keyof Tables;

type Op = { table: Table; key: string; value: unknown } | { table: Table; key: string; value: undefined; del: true };

export class Tx {
  private readonly ops = new Map<string, Op>();
  private readonly db: IndexDb;
  private readonly shared: Map<string, Op>;

  constructor(db: IndexDb, shared: Map<string, Op>) {
    this.db = db;
    this.shared = shared;
  }

  async get<T extends Table>(table: T, key: string): Promise<Tables[T] | undefined> {
    const id = `${table}\0${key}`;
    const op = this.ops.get(id) ?? this.shared.get(id);
    if (op) return op.value as Tables[T] | undefined;
    return this.db.getSync(table, key);
  }

  put<T extends Table>(table: T, key: string, value: Tables[T]): void {
    this.ops.set(`${table}\0${key}`, { table, key, value });
  }

  del(table: Table, key: string): void {
    this.ops.set(`${table}\0${key}`, { table, key, value: undefined, del: true });
  }

  /** @internal merges this transaction's writes into its batch once it succeeded. */
  mergeInto(target: Map<string, Op>): void {
    for (const [k, op] of this.ops) target.set(k, op);
  }
}

function sublevel(level: Level<string, unknown>, name: string) {
  return level.sublevel<string, unknown>(name, { valueEncoding: 'json' });
}
type Sublevel = ReturnType<typeof sublevel>;

interface Job {
  fn: (tx: Tx) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class IndexDb {
  private readonly level: Level<string, unknown>;
  private readonly tables: Record<Table, Sublevel>;
  private queue: Job[] = [];
  private running = false;

  constructor(path: string) {
    this.level = new Level<string, unknown>(path, { valueEncoding: 'json' });
    const sub = (name: string) => sublevel(this.level, name);
    this.tables = {
      instances: sub('i'),
      studies: sub('s'),
      byState: sub('q'),
      byStudy: sub('t'),
      meta: sub('m'),
      deliveries: sub('d'),
      due: sub('u'),
      destinations: sub('n'),
    };
  }

  async open(): Promise<void> {
    await this.level.open();
  }

  async close(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    await this.level.close();
  }

  async get<T extends Table>(table: T, key: string): Promise<Tables[T] | undefined> {
    return (await this.tables[table].get(key)) as Tables[T] | undefined;
  }

  /**
   * Reads from LevelDB's memtable/cache without a thread-pool round trip: transactions on the
   * receive path read a few small records each, where the hop would cost more than the read.
   */
  getSync<T extends Table>(table: T, key: string): Tables[T] | undefined {
    return this.tables[table].getSync(key) as Tables[T] | undefined;
  }

  /** Values of a table in key order, optionally within [gte, lt). */
  async *values<T extends Table>(table: T, range: { gte?: string; lt?: string; limit?: number } = {}): AsyncGenerator<Tables[T]> {
    for await (const value of this.tables[table].values(range)) yield value as Tables[T];
  }

  async *keys(table: Table, range: { gte?: string; lt?: string; limit?: number } = {}): AsyncGenerator<string> {
    for await (const key of this.tables[table].keys(range)) yield key;
  }

  /** Runs `fn` in a transaction; resolves once its writes are in LevelDB's log. */
  transact<R>(fn: (tx: Tx) => R | Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const jobs = this.queue;
      this.queue = [];
      const batch = new Map<string, Op>();
      const done: Array<() => void> = [];
      for (const job of jobs) {
        const tx = new Tx(this, batch);
        try {
          const value = await job.fn(tx);
          tx.mergeInto(batch);
          done.push(() => job.resolve(value));
        } catch (err) {
          job.reject(err);
        }
      }
      try {
        if (batch.size > 0) {
          await this.level.batch(
            [...batch.values()].map((op) =>
              'del' in op
                ? { type: 'del' as const, key: op.key, sublevel: this.tables[op.table] }
                : { type: 'put' as const, key: op.key, value: op.value, sublevel: this.tables[op.table] },
            ),
            // Not synced: the fsynced object files are the durable truth and recovery rebuilds
            // records from them after an unclean stop (see recovery.ts). A process crash loses
            // nothing either way: the write is in the OS before the batch resolves.
            { sync: false },
          );
        }
        for (const resolve of done) resolve();
      } catch (err) {
        // Nothing of this batch is durable: every waiting writer learns it (and nobody acks).
        for (const job of jobs) job.reject(err);
      }
    }
    this.running = false;
  }
}
