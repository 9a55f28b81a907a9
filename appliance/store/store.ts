// The box's one store: content-addressed files under objects/ plus the LevelDB index. Ingest hands
// it fsynced temp files; it answers only once the file is in place and the record is synced, so
// the caller may acknowledge. Later stages move records through their states with `transition`.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { closeSync, fdatasync as fdatasyncCb, linkSync, unlinkSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import type {
  AcceptOutcome,
  HistoryEntry,
  IncomingObject,
  InstanceRecord,
  InstanceState,
  QueueSummary,
  StoreEvents,
  StudyRecord,
} from '../../shared/types/store.ts';
import { IndexDb, type Tx } from './db.ts';
import { Deliveries } from './deliveries.ts';
import { DirSync, fsyncPath } from '../../shared/storage/fsync.ts';
import { consumeCleanMarker, markCleanStop } from './recovery.ts';
import { countState, HISTORY_LIMIT, moveState, stateKey } from './records.ts';
import { addInstanceToStudy, QuietClock } from './study.ts';

const fdatasync = promisify(fdatasyncCb);
const PENDING_STATES: readonly InstanceState[] = ['received', 'filtered', 'registered', 'compressed', 'queued', 'uploaded'];

export interface StoreOptions {
  dataDir: string;
  quietTimeMs: number;
  log: Logger;
}

export class Store extends EventEmitter<StoreEvents> {
  readonly dataDir: string;
  readonly tmpDir: string;
  private readonly db: IndexDb;
  private readonly log: Logger;
  private readonly clock: QuietClock;
  private readonly dirSync = new DirSync();
  /** The upload queue: deliveries per instance and destination. */
  readonly deliveries: Deliveries;

  private constructor(opts: StoreOptions) {
    super();
    this.dataDir = opts.dataDir;
    this.tmpDir = join(opts.dataDir, 'tmp');
    this.log = opts.log;
    this.db = new IndexDb(join(opts.dataDir, 'index'));
    this.deliveries = new Deliveries(this.db, (record, from) => this.emit('state-changed', record, from));
    this.clock = new QuietClock(opts.quietTimeMs, (uid) => void this.completeStudy(uid));
  }

  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts);
    store.cleanStart = await consumeCleanMarker(opts.dataDir);
    // All 256 shard directories up front: no mkdir on the receive path.
    for (let i = 0; i < 256; i++) await mkdir(join(opts.dataDir, 'objects', i.toString(16).padStart(2, '0')), { recursive: true });
    await fsyncPath(join(opts.dataDir, 'objects'));
    // Temp files are objects nobody acknowledged: a restart discards them.
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    await store.db.open();
    let reopened = 0;
    for await (const study of store.db.values('studies')) {
      if (!study.completedAt) {
        store.clock.arm(study.studyInstanceUid, Date.parse(study.lastReceivedAt));
        reopened++;
      }
    }
    store.log.info({ dataDir: opts.dataDir, openStudies: reopened }, 'store opened');
    return store;
  }

  /** False when the previous run did not stop cleanly: recovery should run before ingest starts. */
  cleanStart = true;

  async close(): Promise<void> {
    this.clock.stop();
    await this.db.close();
    await markCleanStop(this.dataDir);
  }

  /** A fresh temp file path on the store's file system, so the final rename is atomic. */
  newTempPath(): string {
    return join(this.tmpDir, `${randomUUID()}.part`);
  }

  /**
   * Moves a written temp file into the store and indexes it. Resolves once the file and its index
   * record are on disk: only then may the sender be told "success".
   */
  async accept(obj: IncomingObject): Promise<AcceptOutcome> {
    const shard = obj.contentHash.slice(0, 2);
    const relPath = join('objects', shard, `${obj.contentHash}.dcm`);
    const finalPath = join(this.dataDir, relPath);
    // Metadata calls on the receive path are synchronous: each takes microseconds, a thread-pool
    // round trip ten times that. Only the fsyncs, which wait for the disk, go to the pool.
    try {
      // link, not rename: it refuses to replace a file that is already there, so an acknowledged
      // object is never swapped for bytes that are not yet synced.
      linkSync(obj.tempPath, finalPath);
      // The data and the new name must both be durable; their syncs run side by side.
      await Promise.all([
        obj.fd !== undefined ? fdatasync(obj.fd) : fsyncPath(finalPath),
        this.dirSync.sync(join(this.dataDir, 'objects', shard)),
      ]);
    } catch (err) {
      // Same content already stored (and synced before it was acknowledged): nothing to write.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      if (obj.fd !== undefined) closeSync(obj.fd);
      try {
        unlinkSync(obj.tempPath);
      } catch {
        // already gone
      }
    }
    const now = new Date().toISOString();
    const outcome = await this.db.transact((tx) => this.index(tx, obj, relPath, now));
    if (outcome.outcome !== 'duplicate') {
      this.clock.arm(obj.header.studyInstanceUid);
      this.emit('instance-stored', outcome.record);
    }
    return outcome;
  }

  /** Indexes a file already in objects/ that no record points to (recovery after an unclean stop). */
  async adopt(relPath: string, found: Pick<IncomingObject, 'header' | 'contentHash' | 'size'>): Promise<AcceptOutcome> {
    const obj: IncomingObject = { ...found, tempPath: '', source: { kind: 'recovery', path: relPath } };
    const outcome = await this.db.transact((tx) => this.index(tx, obj, relPath, new Date().toISOString()));
    if (outcome.outcome !== 'duplicate') this.clock.arm(obj.header.studyInstanceUid);
    return outcome;
  }

  /** Content hashes of every record: what recovery compares the object files against. */
  async contentHashes(): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const r of this.db.values('instances')) out.add(r.contentHash);
    return out;
  }

  private async index(tx: Tx, obj: IncomingObject, relPath: string, now: string): Promise<AcceptOutcome> {
    const uid = obj.header.sopInstanceUid;
    const first = await tx.get('instances', uid);
    const entry = (event: string, state: InstanceState, detail?: string): HistoryEntry => ({
      at: now,
      state,
      event,
      source: obj.source,
      ...(detail ? { detail } : {}),
    });
    if (first) {
      const versionId = first.contentHash === obj.contentHash ? uid : `${uid}#${obj.contentHash.slice(0, 12)}`;
      const same = versionId === uid ? first : await tx.get('instances', versionId);
      if (same) {
        const history = [...same.history, entry('duplicate-received', same.state)].slice(-HISTORY_LIMIT);
        const record = { ...same, history, updatedAt: now };
        tx.put('instances', same.id, record);
        return { outcome: 'duplicate', record };
      }
      const reason = `uid-conflict: SOP Instance UID already stored with different content (${first.contentHash.slice(0, 12)})`;
      const record = this.newRecord(versionId, obj, relPath, now, 'held', [entry('conflict-held', 'held', reason)]);
      record.reason = reason;
      record.conflictOf = uid;
      tx.put('instances', uid, { ...first, conflicts: [...(first.conflicts ?? []), versionId], updatedAt: now });
      await this.insert(tx, record);
      return { outcome: 'conflict', record };
    }
    const record = this.newRecord(uid, obj, relPath, now, 'received', [entry('stored', 'received')]);
    await this.insert(tx, record);
    return { outcome: 'stored', record };
  }

  private newRecord(
    id: string,
    obj: IncomingObject,
    path: string,
    now: string,
    state: InstanceState,
    history: HistoryEntry[],
  ): InstanceRecord {
    return { id, header: obj.header, contentHash: obj.contentHash, size: obj.size, path, state, receivedAt: now, updatedAt: now, history };
  }

  private async insert(tx: Tx, record: InstanceRecord): Promise<void> {
    const h = record.header;
    tx.put('instances', record.id, record);
    tx.put('byState', stateKey(record.state, record), record.id);
    tx.put('byStudy', `${h.studyInstanceUid}\0${h.seriesInstanceUid}\0${record.id}`, record.id);
    tx.put('studies', h.studyInstanceUid, addInstanceToStudy(await tx.get('studies', h.studyInstanceUid), record));
    await countState(tx, record, undefined, record.state);
  }

  /**
   * Moves a record to a new state, with a history entry. Stages call this after their own output
   * is durable. Throws if the record is not in `from` (another actor moved it first).
   */
  async transition(id: string, from: InstanceState, to: InstanceState, event: string, detail?: string): Promise<InstanceRecord> {
    const record = await this.db.transact((tx) => moveState(tx, id, from, to, event, detail));
    this.emit('state-changed', record, from);
    return record;
  }

  /** A new quiet time (remote config); open studies wait it out from their last instance. */
  setQuietTime(quietTimeMs: number): void {
    this.clock.setQuietMs(quietTimeMs);
  }

  /** Notes that retention removed a committed instance's local files. */
  async markPurged(id: string): Promise<void> {
    await this.db.transact(async (tx) => {
      const r = await tx.get('instances', id);
      if (!r || r.state !== 'committed') return;
      const now = new Date().toISOString();
      tx.put('instances', id, { ...r, purgedAt: now, history: [...r.history, { at: now, state: r.state, event: 'local-copy-removed' }].slice(-HISTORY_LIMIT) });
    });
  }

  get(id: string): Promise<InstanceRecord | undefined> {
    return this.db.get('instances', id);
  }

  getStudy(uid: string): Promise<StudyRecord | undefined> {
    return this.db.get('studies', uid);
  }

  async listStudies(limit = 1000): Promise<StudyRecord[]> {
    const out: StudyRecord[] = [];
    for await (const s of this.db.values('studies', { limit })) out.push(s);
    return out;
  }

  /** Ids of a study's instances, in series order. */
  async studyInstanceIds(studyUid: string): Promise<string[]> {
    const out: string[] = [];
    for await (const id of this.db.values('byStudy', { gte: `${studyUid}\0`, lt: `${studyUid}\x01` })) out.push(id);
    return out;
  }

  /** Ids in a state, oldest first: the work list of the stage that consumes that state. */
  async idsInState(state: InstanceState, limit = 1000): Promise<string[]> {
    const out: string[] = [];
    for await (const id of this.db.values('byState', { gte: `${state}\0`, lt: `${state}\x01`, limit })) out.push(id);
    return out;
  }

  async queueSummary(): Promise<QueueSummary> {
    const c = (await this.db.get('meta', 'counters')) ?? { byState: {}, bytesByState: {} };
    let pendingBytes = 0;
    let oldestPendingAt: string | undefined;
    for (const state of PENDING_STATES) {
      pendingBytes += c.bytesByState[state] ?? 0;
      for await (const key of this.db.keys('byState', { gte: `${state}\0`, lt: `${state}\x01`, limit: 1 })) {
        const at = key.split('\0')[1];
        if (at && (!oldestPendingAt || at < oldestPendingAt)) oldestPendingAt = at;
      }
    }
    return { byState: c.byState, pendingBytes, ...(oldestPendingAt ? { oldestPendingAt } : {}) };
  }

  private async completeStudy(uid: string): Promise<void> {
    try {
      const study = await this.db.transact(async (tx) => {
        const s = await tx.get('studies', uid);
        if (!s || s.completedAt) return undefined;
        const done = { ...s, completedAt: new Date().toISOString() };
        tx.put('studies', uid, done);
        return done;
      });
      if (study) this.emit('study-complete', study);
    } catch (err) {
      this.log.error({ err, studyInstanceUid: uid }, 'could not mark study complete');
    }
  }

  /** Temp files left behind, for tests and the disk report. */
  async tempFiles(): Promise<string[]> {
    return readdir(this.tmpDir);
  }
}

