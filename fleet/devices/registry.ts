// The device registry: every enrolled device with its identity, live state, config and history.
// All of it is loaded into memory at open (the broker asks isRevoked on every connect, the API
// lists the fleet on every page view); writes go to LevelDB at <dataDir>/devices (see store.ts).
import type { StatsRow, TelemetryPoint } from '../../shared/fleet/api.ts';
import type { DesiredConfig, ReportedConfig, StatusMessage, Telemetry } from '../../shared/fleet/messages.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeviceDirectory, DeviceIdentityRecord, RevokedSerial } from '../types.ts';
import { CommandLog } from './command-log.ts';
import { DailyStats, type StoredDay } from './daily.ts';
import { HistoryRing, pointOf } from './history.ts';
import { clinicOf, matches, MAX_EVENTS, newState, normalSerial, type DeviceEvent, type DeviceFilter, type DeviceState, type PersistedStatus } from './state.ts';
import { retire, revokedSerialsOf } from './revocations.ts';
import { RegistryDb } from './store.ts';

/** How often hot data is written (one batch). */
export const FLUSH_INTERVAL_MS = 1000;
/** A device's latest telemetry and last-seen time are written at most this often (and when it goes offline). */
export const TELEMETRY_PERSIST_MS = 60_000;
/** A device's history ring is written at most this often (~5.6 KiB; 20k devices → ~0.4 MB/s). */
export const HISTORY_PERSIST_MS = 300_000;

export class UnknownDeviceError extends Error {
  override name = 'UnknownDeviceError';
  readonly deviceId: string;
  constructor(deviceId: string) {
    super(`no device ${deviceId}`);
    this.deviceId = deviceId;
  }
}

export class DeviceRegistry implements DeviceDirectory {
  private readonly db: RegistryDb;
  private readonly log: Logger;
  private readonly devices = new Map<string, DeviceState>();
  private readonly daily = new DailyStats();
  private timer: NodeJS.Timeout | undefined;
  private readonly certListeners: Array<() => void> = [];
  readonly commands: CommandLog;

  private constructor(db: RegistryDb, log: Logger) {
    this.db = db;
    this.log = log;
    this.commands = new CommandLog(db);
  }

  static async open(dir: string, log: Logger): Promise<DeviceRegistry> {
    const reg = new DeviceRegistry(await RegistryDb.open(dir), log);
    await reg.load();
    reg.timer = setInterval(() => {
      reg.db.flush().catch((err: unknown) => reg.log.error({ err }, 'registry flush failed; will retry'));
    }, FLUSH_INTERVAL_MS);
    reg.timer.unref();
    return reg;
  }

  private async load(): Promise<void> {
    const started = Date.now();
    const now = Date.now();
    for await (const [id, rec] of this.db.entries('identity')) this.devices.set(id, newState(rec as DeviceIdentityRecord));
    for await (const [id, v] of this.db.entries('status')) {
      const s = this.devices.get(id);
      const st = v as PersistedStatus;
      if (!s) continue;
      Object.assign(s, { online: st.online, statusAt: st.statusAt, reason: st.reason, firmware: st.firmware ?? s.firmware });
      s.lastSeenMs = st.lastSeenAt ? Date.parse(st.lastSeenAt) : 0;
    }
    for await (const [id, v] of this.db.entries('telemetry')) {
      const s = this.devices.get(id);
      if (s) s.telemetry = v as Telemetry;
    }
    for await (const [id, v] of this.db.entries('events')) {
      const s = this.devices.get(id);
      if (s) s.events = v as DeviceEvent[];
    }
    for await (const [id, v] of this.db.entries('desired')) {
      const s = this.devices.get(id);
      if (s) s.desired = v as DesiredConfig;
    }
    for await (const [id, v] of this.db.entries('reported')) {
      const s = this.devices.get(id);
      if (s) s.reported = v as ReportedConfig;
    }
    let points = 0;
    for await (const [id, bytes] of this.db.historyEntries()) {
      const s = this.devices.get(id);
      if (!s) continue;
      s.history = HistoryRing.decode(bytes);
      points += s.history.size;
    }
    for await (const [key, v] of this.db.entries('daily')) {
      const [day = '', id = ''] = key.split('!');
      this.daily.load(id, day, v as StoredDay, now);
    }
    this.log.info({ devices: this.devices.size, points, ms: Date.now() - started }, 'device registry loaded');
  }

  // --- DeviceDirectory -------------------------------------------------------------------------

  getIdentity(id: string): DeviceIdentityRecord | undefined {
    return this.devices.get(id)?.identity;
  }

  isRevoked(id: string): boolean {
    return Boolean(this.devices.get(id)?.identity.revokedAt);
  }

  isCurrentSerial(id: string, serial: string): boolean {
    const rec = this.devices.get(id)?.identity;
    return rec !== undefined && normalSerial(rec.certSerial) === normalSerial(serial);
  }

  async register(record: Omit<DeviceIdentityRecord, 'tags' | 'revokedAt'>): Promise<void> {
    const previous = this.devices.get(record.id)?.identity;
    const identity: DeviceIdentityRecord = { ...record, tags: [], revokedAt: null };
    if (previous) identity.retiredCerts = retire(previous, 'superseded', Date.now());
    await this.db.write([{ table: 'identity', key: identity.id, value: identity }]);
    const s = this.devices.get(identity.id);
    if (s) s.identity = identity;
    else this.devices.set(identity.id, newState(identity));
    this.addEvent(identity.id, 'enrolled', `group ${identity.group}, token ${identity.enrolToken}`);
    if (previous) this.certificatesChanged();
  }

  async renewed(id: string, serial: string, notAfter: string): Promise<void> {
    const retiredCerts = retire(this.mustGet(id).identity, 'superseded', Date.now());
    await this.saveIdentity(id, { certSerial: serial, certNotAfter: notAfter, retiredCerts });
    this.addEvent(id, 'renewed', `certificate ${serial} valid until ${notAfter}`);
    this.certificatesChanged();
  }

  /** Every certificate that must not connect (see ./revocations.ts), for an external broker's CRL. */
  revokedSerials(nowMs = Date.now()): RevokedSerial[] {
    const out: RevokedSerial[] = [];
    for (const s of this.devices.values()) out.push(...revokedSerialsOf(s.identity, nowMs));
    return out;
  }

  /** Called after a revocation, renewal or re-enrolment changed revokedSerials(). */
  onCertificatesChanged(listener: () => void): void {
    this.certListeners.push(listener);
  }

  private certificatesChanged(): void {
    for (const l of this.certListeners) l();
  }

  // --- Reads -----------------------------------------------------------------------------------

  get(id: string): Readonly<DeviceState> | undefined {
    return this.devices.get(id);
  }

  get size(): number {
    return this.devices.size;
  }

  list(filter: DeviceFilter = {}): Array<Readonly<DeviceState>> {
    const out: DeviceState[] = [];
    for (const s of this.devices.values()) if (matches(s, filter)) out.push(s);
    return out.sort((a, b) => (a.identity.id < b.identity.id ? -1 : 1));
  }

  all(): IterableIterator<Readonly<DeviceState>> {
    return this.devices.values();
  }

  history(id: string, limit?: number): TelemetryPoint[] {
    return this.devices.get(id)?.history?.points(limit) ?? [];
  }

  stats(days: number, nowMs = Date.now()): StatsRow[] {
    return this.daily.rows(days, nowMs);
  }

  // --- Changes made by people (synced) ---------------------------------------------------------

  async update(id: string, patch: { group?: string; tags?: string[]; labels?: Record<string, string> }): Promise<DeviceIdentityRecord> {
    const changes: Partial<DeviceIdentityRecord> = {};
    if (patch.group !== undefined) changes.group = patch.group;
    if (patch.tags !== undefined) changes.tags = [...new Set(patch.tags)];
    if (patch.labels !== undefined) changes.labels = { ...patch.labels };
    const rec = await this.saveIdentity(id, changes);
    this.addEvent(id, 'updated', Object.keys(changes).join(', '));
    return rec;
  }

  /** False when it was revoked already. */
  async revoke(id: string, by: string, nowMs = Date.now()): Promise<boolean> {
    if (this.isRevoked(id)) return false;
    await this.saveIdentity(id, { revokedAt: new Date(nowMs).toISOString() });
    this.addEvent(id, 'revoked', `by ${by}`);
    this.certificatesChanged();
    return true;
  }

  /** Stores the next desired version for the device. */
  async setDesired(id: string, config: Record<string, unknown>, by: string, nowMs = Date.now()): Promise<DesiredConfig> {
    const s = this.mustGet(id);
    const desired: DesiredConfig = { version: (s.desired?.version ?? 0) + 1, config, issuedAt: new Date(nowMs).toISOString(), issuedBy: by };
    await this.db.write([{ table: 'desired', key: id, value: desired }]);
    s.desired = desired;
    this.addEvent(id, 'config-desired', `version ${desired.version} by ${by}`);
    return desired;
  }

  // --- Changes reported by devices (batched) ---------------------------------------------------

  /**
   * Applies a status message in arrival order; returns true when online/offline changed. Its `at`
   * cannot order them: a last will is composed at connect time, before the online status it follows.
   */
  setStatus(id: string, msg: StatusMessage, nowMs = Date.now()): boolean {
    const s = this.devices.get(id);
    if (!s) return false;
    s.lastSeenMs = nowMs;
    if (msg.firmware) s.firmware = msg.firmware;
    const changed = s.online !== msg.online || s.statusAt === null;
    s.online = msg.online;
    s.reason = msg.reason ?? null;
    // The fleet's clock: a will's own time is its connect time, not when the connection was lost.
    if (changed) s.statusAt = new Date(nowMs).toISOString();
    // Going offline: what it last said is what the dashboard shows until it is back.
    if (changed && !msg.online) this.persistLatest(s, nowMs);
    else this.queueStatus(s);
    if (changed) this.addEvent(id, msg.online ? 'online' : 'offline', msg.reason);
    return changed;
  }

  recordTelemetry(id: string, t: Telemetry, nowMs = Date.now()): void {
    const s = this.devices.get(id);
    if (!s) return;
    s.lastSeenMs = nowMs;
    s.telemetry = t;
    s.telemetryMs = nowMs;
    s.firmware = t.firmware;
    if (!s.history) {
      s.history = new HistoryRing();
      // Devices come online together after a fleet restart: their history writes start spread out.
      s.historyPersistedMs = nowMs - Math.random() * HISTORY_PERSIST_MS;
    }
    s.history.push(pointOf(t, nowMs));
    if (nowMs - s.historyPersistedMs >= HISTORY_PERSIST_MS) this.persistHistory(s, nowMs);
    for (const { day, stored } of this.daily.apply(id, clinicOf(s.identity), t.daily, nowMs)) this.db.queue('daily', `${day}!${id}`, stored);
    if (nowMs - s.persistedMs >= TELEMETRY_PERSIST_MS) this.persistLatest(s, nowMs);
  }

  setReported(id: string, reported: ReportedConfig, nowMs = Date.now()): void {
    const s = this.devices.get(id);
    if (!s) return;
    s.lastSeenMs = nowMs;
    s.reported = reported;
    this.db.queue('reported', id, reported);
  }

  /** Any message counts as a sign of life. */
  touch(id: string, nowMs = Date.now()): void {
    const s = this.devices.get(id);
    if (s) s.lastSeenMs = nowMs;
  }

  addEvent(id: string, event: DeviceEvent['event'], detail?: string, nowMs = Date.now()): void {
    const s = this.devices.get(id);
    if (!s) return;
    s.events.push({ at: new Date(nowMs).toISOString(), event, ...(detail ? { detail } : {}) });
    if (s.events.length > MAX_EVENTS) s.events.splice(0, s.events.length - MAX_EVENTS);
    this.db.queue('events', id, s.events);
  }

  /** Writes what is queued now (tests, shutdown). */
  async flush(): Promise<void> {
    await this.db.flush();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const now = Date.now();
    for (const s of this.devices.values()) {
      if (s.telemetryMs > s.persistedMs || s.lastSeenMs > s.persistedMs) this.persistLatest(s, now);
      if (s.history && s.telemetryMs > s.historyPersistedMs) this.persistHistory(s, now);
    }
    await this.db.close();
  }

  private persistLatest(s: DeviceState, nowMs: number): void {
    s.persistedMs = nowMs;
    if (s.telemetry) this.db.queue('telemetry', s.identity.id, s.telemetry);
    this.queueStatus(s);
  }

  private persistHistory(s: DeviceState, nowMs: number): void {
    s.historyPersistedMs = nowMs;
    if (s.history) this.db.queueHistory(s.identity.id, s.history.encode());
  }

  private queueStatus(s: DeviceState): void {
    const st: PersistedStatus = {
      online: s.online,
      statusAt: s.statusAt,
      reason: s.reason,
      lastSeenAt: s.lastSeenMs ? new Date(s.lastSeenMs).toISOString() : null,
      firmware: s.firmware,
    };
    this.db.queue('status', s.identity.id, st);
  }

  private mustGet(id: string): DeviceState {
    const s = this.devices.get(id);
    if (!s) throw new UnknownDeviceError(id);
    return s;
  }

  private async saveIdentity(id: string, changes: Partial<DeviceIdentityRecord>): Promise<DeviceIdentityRecord> {
    const s = this.mustGet(id);
    const next = { ...s.identity, ...changes, id };
    await this.db.write([{ table: 'identity', key: id, value: next }]);
    s.identity = next;
    return next;
  }
}
