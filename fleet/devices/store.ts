// The registry's LevelDB layout and its two write paths. Rare, important changes (identity,
// desired config, commands) are written at once and synced; hot per-message data (status, last
// seen, telemetry, history points, events, daily figures) is coalesced in memory and written as one
// unsynced batch every second or so: a crash loses at most that second, never an fsync per message.
import { Level } from 'level';

/** Tables written at once (synced). */
type SyncTable =
  /** id → DeviceIdentityRecord */
  | 'identity'
  /** id → DesiredConfig */
  | 'desired'
  /** cmdId → CommandRecord */
  | 'commands'
  /** `<deviceId>!<issuedAt>!<cmdId>` → cmdId: a device's commands in order */
  | 'commandIndex'
  /** cmdId → deviceId, commands still pending (re-armed after a restart) */
  | 'pending';
/** Tables written in the coalesced batch. */
type HotTable =
  /** id → PersistedStatus */
  | 'status'
  /** id → latest Telemetry (throttled per device) */
  | 'telemetry'
  /** id → DeviceEvent[] */
  | 'events'
  /** id → ReportedConfig */
  | 'reported'
  /** `<day>!<id>` → StoredDay */
  | 'daily';
export type Table = SyncTable | HotTable;

const NAMES: Record<Table, string> = {
  identity: 'id',
  desired: 'ds',
  commands: 'cm',
  commandIndex: 'cx',
  pending: 'cp',
  status: 'st',
  telemetry: 'tl',
  events: 'ev',
  reported: 'rp',
  daily: 'dy',
};

export type SyncOp = { table: SyncTable; key: string; value: unknown } | { table: SyncTable; key: string; del: true };

function jsonSub(level: Level<string, unknown>, name: string) {
  return level.sublevel<string, unknown>(name, { valueEncoding: 'json' });
}
type JsonSub = ReturnType<typeof jsonSub>;

export class RegistryDb {
  private readonly level: Level<string, unknown>;
  private readonly tables: Record<Table, JsonSub>;
  /** id → the device's telemetry history (see history.ts). */
  private readonly history;
  private hot = new Map<string, { table: HotTable; key: string; value: unknown }>();
  private hotHistory = new Map<string, Uint8Array>();
  private flushing: Promise<void> | undefined;

  private constructor(level: Level<string, unknown>) {
    this.level = level;
    const tables = {} as Record<Table, JsonSub>;
    for (const [t, name] of Object.entries(NAMES)) tables[t as Table] = jsonSub(level, name);
    this.tables = tables;
    this.history = level.sublevel<string, Uint8Array>('hb', { valueEncoding: 'view' });
  }

  static async open(dir: string): Promise<RegistryDb> {
    const level = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await level.open();
    return new RegistryDb(level);
  }

  async get(table: Table, key: string): Promise<unknown> {
    return this.tables[table].get(key);
  }

  entries(table: Table, range: { gte?: string; lt?: string; lte?: string; reverse?: boolean; limit?: number } = {}): AsyncIterable<[string, unknown]> {
    return this.tables[table].iterator(range);
  }

  keys(table: Table, range: { gte?: string; lt?: string; reverse?: boolean; limit?: number } = {}): AsyncIterable<string> {
    return this.tables[table].keys(range);
  }

  historyEntries(): AsyncIterable<[string, Uint8Array]> {
    return this.history.iterator();
  }

  /** Written and synced before it resolves. */
  async write(ops: SyncOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.level.batch(
      ops.map((op) =>
        'del' in op
          ? { type: 'del' as const, key: op.key, sublevel: this.tables[op.table] }
          : { type: 'put' as const, key: op.key, value: op.value, sublevel: this.tables[op.table] },
      ),
      { sync: true },
    );
  }

  /** Queued for the next flush; a later value for the same key replaces the queued one. */
  queue(table: HotTable, key: string, value: unknown): void {
    this.hot.set(`${table}\0${key}`, { table, key, value });
  }

  queueHistory(id: string, bytes: Uint8Array): void {
    this.hotHistory.set(id, bytes);
  }

  get queued(): number {
    return this.hot.size + this.hotHistory.size;
  }

  /** Writes everything queued as one batch. Concurrent callers share the running flush, then go again. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    if (this.hot.size === 0 && this.hotHistory.size === 0) return;
    const hot = this.hot;
    const history = this.hotHistory;
    this.hot = new Map();
    this.hotHistory = new Map();
    const ops = [];
    for (const op of hot.values()) ops.push({ type: 'put' as const, key: op.key, value: op.value, sublevel: this.tables[op.table] });
    const historyOps = [...history].map(([key, value]) => ({ type: 'put' as const, key, value, sublevel: this.history }));
    this.flushing = (async () => {
      const batch = this.level.batch();
      for (const op of ops) batch.put(op.key, op.value, { sublevel: op.sublevel });
      for (const op of historyOps) batch.put(op.key, op.value, { sublevel: op.sublevel });
      await batch.write();
    })();
    try {
      await this.flushing;
    } catch (err) {
      // Keep what failed for the next attempt unless newer values were queued meanwhile.
      for (const [k, v] of hot) if (!this.hot.has(k)) this.hot.set(k, v);
      for (const [k, v] of history) if (!this.hotHistory.has(k)) this.hotHistory.set(k, v);
      throw err;
    } finally {
      this.flushing = undefined;
    }
  }

  async close(): Promise<void> {
    await this.flush();
    await this.level.close();
  }
}
