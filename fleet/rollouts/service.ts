// The rollout driver: keeps rollouts, the failure ledger and the boxes' last update statuses in
// memory (persisted by RolloutStore), feeds box reports and the clock into the pure planner
// (plan.ts) and carries out what it decides: retained UpdateOffers published or withdrawn, device
// events, audit entries. Every change is saved before the offers it causes go out, so a restart
// republishes exactly the offers that should stand.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { DeviceUpdate } from '../../shared/fleet/api.ts';
import type { Logger } from '../../shared/log.ts';
import { UpdateStatus } from '../../shared/update/messages.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import type { AuditLog, FleetBus } from '../types.ts';
import { Effects } from './effects.ts';
import { FailureLedger } from './ledger.ts';
import { abort, applyStatus, approveRetry, counts, createRollout, pauseByOperator, resume, StateError, step, tally, waveTargets, type Action, type PlanContext } from './plan.ts';
import type { ReleaseStore } from './releases.ts';
import { ACTIVE_STATUSES, DEFAULT_WAVES, type Rollout, type RolloutCreate, type RolloutSummary, type RolloutView } from './schemas.ts';
import { RolloutStore } from './store.ts';

export { StateError };

export class RolloutInputError extends Error {
  override name = 'RolloutInputError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface RolloutServiceOptions {
  /** <fleet dataDir>/rollouts */
  dir: string;
  releases: ReleaseStore;
  registry: DeviceRegistry;
  bus: FleetBus;
  audit: AuditLog;
  log: Logger;
  /** HTTPS base URL boxes download bundles from (known once the fleet listens). */
  baseUrl: () => string;
  defaultHealthTimeoutMs: number;
  /** How often timeouts are checked (default 1 s). */
  tickMs?: number;
}

const checkStatus = TypeCompiler.Compile(UpdateStatus);

export class RolloutService {
  private readonly opts: RolloutServiceOptions;
  private readonly store: RolloutStore;
  private readonly log: Logger;
  private rollouts = new Map<string, Rollout>();
  private ledger = new FailureLedger();
  private statuses = new Map<string, UpdateStatus>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private subscribed = false;
  private readonly effects: Effects;

  constructor(opts: RolloutServiceOptions) {
    this.opts = opts;
    this.log = opts.log;
    this.store = new RolloutStore(opts.dir, opts.log);
    this.effects = new Effects({ ...opts, store: this.store });
  }

  /** Loads the saved state; call before the API serves. */
  async load(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const loaded = await this.store.load();
    this.rollouts = new Map(loaded.rollouts.map((r) => [r.id, r]));
    this.ledger = new FailureLedger(loaded.ledger);
    this.statuses = loaded.statuses;
  }

  /** Listens for box reports, republishes the offers that stand, moves running rollouts on. */
  async start(): Promise<void> {
    this.running = true;
    if (!this.subscribed) {
      this.subscribed = true;
      this.opts.bus.onDeviceMessage((id, kind, payload) => {
        if (this.running && kind === 'update/status') this.onStatus(id, payload);
      });
    }
    // The embedded broker keeps retained messages in memory only: put standing offers back. The
    // health timeout starts again now: no box could report while the fleet was down.
    let republished = 0;
    const nowIso = new Date().toISOString();
    for (const r of this.rollouts.values()) {
      if (r.state === 'aborted') continue;
      for (const b of r.boxes) {
        if (!ACTIVE_STATUSES.has(b.status)) continue;
        republished++;
        b.updatedAt = nowIso;
        void this.effects.publishOffer(r, b.deviceId, b.retryApproved === true, b.offeredAt);
      }
    }
    for (const r of this.rollouts.values()) await this.advance(r);
    this.timer = setInterval(() => this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
    this.log.info({ rollouts: this.rollouts.size, republished, ledger: this.ledger.all().length }, 'rollout service started');
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.store.flush();
  }

  // --- Reads -----------------------------------------------------------------------------------

  list(): RolloutSummary[] {
    return [...this.rollouts.values()]
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : -1))
      .map((r) => ({
        id: r.id,
        version: r.version,
        group: r.group,
        state: r.state,
        ...(r.pauseReason ? { pauseReason: r.pauseReason } : {}),
        currentWave: r.currentWave,
        waves: r.waves.length,
        boxes: r.boxes.length,
        counts: counts(r),
        createdBy: r.createdBy,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
      }));
  }

  get(id: string): RolloutView | undefined {
    const r = this.rollouts.get(id);
    return r && { ...r, counts: counts(r), tallies: r.waves.map((w) => tally(r, w.index)) };
  }

  /** True while a running or paused rollout offers this version (its bundle must stay). */
  usesRelease(version: string): string | undefined {
    for (const r of this.rollouts.values()) if (r.version === version && (r.state === 'running' || r.state === 'paused')) return r.id;
    return undefined;
  }

  deviceUpdate(deviceId: string): DeviceUpdate {
    let newest: Rollout | undefined;
    for (const r of this.rollouts.values()) if (r.boxes.some((b) => b.deviceId === deviceId) && (!newest || r.createdAt >= newest.createdAt)) newest = r;
    const box = newest?.boxes.find((b) => b.deviceId === deviceId);
    return {
      status: this.statuses.get(deviceId) ?? null,
      rollout: newest && box ? { id: newest.id, version: newest.version, state: newest.state, boxStatus: box.status, ...(box.reason ? { reason: box.reason } : {}) } : null,
      failedReleases: this.ledger.forDevice(deviceId).map(({ deviceId: _d, ...e }) => e),
    };
  }

  // --- People's actions ------------------------------------------------------------------------

  async create(input: RolloutCreate, by: string): Promise<RolloutView> {
    const release = this.opts.releases.get(input.version);
    if (!release) throw new RolloutInputError('unknown-release', `no release ${input.version}: upload its bundle first`);
    const waves = (input.waves ?? DEFAULT_WAVES).map((w) => ({ ...w, successThreshold: w.successThreshold ?? 1, failureThreshold: w.failureThreshold ?? 0.1 }));
    try {
      waveTargets(1, waves);
    } catch (err) {
      throw new RolloutInputError('bad-waves', (err as Error).message);
    }
    const targets = this.opts.registry.list({ group: input.group }).filter((s) => !s.identity.revokedAt);
    if (targets.length === 0) throw new RolloutInputError('no-targets', `group ${input.group} has no devices that are not revoked`);
    const ids = new Set(targets.map((t) => t.identity.id));
    for (const other of this.rollouts.values()) {
      if ((other.state === 'running' || other.state === 'paused') && other.boxes.some((b) => ids.has(b.deviceId))) {
        throw new StateError(`rollout ${other.id} (${other.version}, ${other.state}) still includes boxes of group ${input.group}: abort it or let it finish first`);
      }
    }
    const id = `ro-${randomBytes(6).toString('hex')}`;
    const r = createRollout(
      {
        id,
        version: input.version,
        group: input.group,
        sha256: release.sha256,
        size: release.size,
        createdBy: by,
        healthTimeoutMs: input.healthTimeoutMs ?? this.opts.defaultHealthTimeoutMs,
        waves,
        targets: targets.map((s) => ({ deviceId: s.identity.id, firmware: s.firmware })),
      },
      this.ctx(input.version),
    );
    this.rollouts.set(id, r);
    await this.opts.audit.record({ actor: by, action: 'rollout.create', target: id, outcome: 'ok', detail: { version: r.version, group: r.group, boxes: r.boxes.length, waves: r.waves.map((w) => w.cumulative) } });
    await this.advance(r, true);
    return this.get(id) as RolloutView;
  }

  pause(id: string, by: string): Promise<RolloutView> {
    return this.act(id, by, 'rollout.pause', (r) => pauseByOperator(r, by, Date.now()));
  }

  resume(id: string, by: string): Promise<RolloutView> {
    return this.act(id, by, 'rollout.resume', (r) => resume(r, by, this.ctx(r.version)));
  }

  abort(id: string, by: string): Promise<RolloutView> {
    return this.act(id, by, 'rollout.abort', (r) => abort(r, by, Date.now()));
  }

  retry(id: string, deviceId: string, by: string): Promise<RolloutView> {
    return this.act(id, by, 'rollout.retry', (r) => {
      const actions = approveRetry(r, deviceId, by, Date.now());
      this.ledger.approve(deviceId, r.version, by, r.id, new Date().toISOString());
      void this.store.saveLedger(() => this.ledger.all());
      this.opts.registry.addEvent(deviceId, 'update', `${r.version} re-approved by ${by} (rollout ${r.id})`);
      return actions;
    }, { deviceId });
  }

  private async act(id: string, by: string, action: string, fn: (r: Rollout) => Action[], detail: Record<string, unknown> = {}): Promise<RolloutView> {
    const r = this.rollouts.get(id);
    if (!r) throw new RolloutInputError('not-found', `no rollout ${id}`);
    const actions = fn(r); // StateError: nothing changed
    await this.store.saveRollout(r);
    await this.opts.audit.record({ actor: by, action, target: id, outcome: 'ok', detail: { version: r.version, state: r.state, ...detail } });
    await this.effects.execute(r, [...actions, ...step(r, this.ctx(r.version))]);
    return this.get(id) as RolloutView;
  }

  // --- Box reports and the clock ---------------------------------------------------------------

  /** One update/status message. Never throws: a bad payload is logged and dropped. */
  onStatus(deviceId: string, payload: unknown, nowMs = Date.now()): void {
    try {
      const device = this.opts.registry.get(deviceId);
      if (!device || device.identity.revokedAt) return;
      if (!checkStatus.Check(payload)) {
        this.log.debug({ deviceId, errors: [...checkStatus.Errors(payload)].slice(0, 3).map((e) => `${e.path} ${e.message}`) }, 'invalid update status dropped');
        return;
      }
      const prev = this.statuses.get(deviceId);
      // A retained status comes again on every (re)subscription: only a new one is news.
      if (prev && prev.at === payload.at && prev.phase === payload.phase && prev.rolloutId === payload.rolloutId) return;
      this.statuses.set(deviceId, payload);
      void this.store.saveStatuses(() => Object.fromEntries(this.statuses));
      const nowIso = new Date(nowMs).toISOString();
      if (this.ledger.learn(deviceId, payload, nowIso)) void this.store.saveLedger(() => this.ledger.all());
      if (payload.version && ['committed', 'rolled-back', 'refused', 'failed'].includes(payload.phase) && prev?.phase !== payload.phase) {
        this.opts.registry.addEvent(deviceId, 'update', `${payload.version} ${payload.phase}${payload.reason ? `: ${payload.reason}` : ''}`, nowMs);
      }
      const r = payload.rolloutId ? this.rollouts.get(payload.rolloutId) : undefined;
      if (!r) return;
      const res = applyStatus(r, deviceId, payload, nowMs);
      if (!res.changed) return;
      const actions: Action[] = res.final ? [{ kind: 'withdraw', deviceId }] : [];
      if (res.final && payload.phase !== 'committed') this.log.warn({ rolloutId: r.id, deviceId, phase: payload.phase, reason: payload.reason }, 'box did not take the release');
      void this.effects.execute(r, [...actions, ...step(r, this.ctx(r.version, nowMs))]);
    } catch (err) {
      this.log.error({ err, deviceId }, 'update status handling failed');
    }
  }

  private tick(): void {
    for (const r of this.rollouts.values()) {
      if (r.state === 'aborted' || !r.boxes.some((b) => ACTIVE_STATUSES.has(b.status))) continue;
      void this.advance(r);
    }
  }

  private async advance(r: Rollout, force = false): Promise<void> {
    const actions = step(r, this.ctx(r.version));
    if (actions.length > 0 || force) await this.effects.execute(r, actions);
  }

  private ctx(version: string, nowMs = Date.now()): PlanContext {
    return {
      nowMs,
      blocked: (deviceId) => (this.opts.registry.isRevoked(deviceId) ? 'revoked' : this.ledger.blockedReason(deviceId, version, this.statuses.get(deviceId))),
      runningVersion: (deviceId) => this.opts.registry.get(deviceId)?.firmware ?? null,
    };
  }
}
