// The box's updater: offer → download (resumable) → verify → install into the inactive slot →
// switch → restart; in the new slot the health window → commit, or roll back itself and report
// why. One offer is worked on at a time; a newer offer replaces it, a withdrawn one stops it
// (before the switch; after it, the trial decides). Wiring: appliance.ts makes one at start,
// the agent feeds it offers and link events and publishes its status.
import { Value } from '@sinclair/typebox/value';
import { writeFileDurable } from '../../../shared/crypto/durable-file.ts';
import type { Logger } from '../../../shared/log.ts';
import { UpdateOffer, type UpdateStatus } from '../../../shared/update/messages.ts';
import type { SlotState } from '../../../shared/update/slots.ts';
import { prepareBoot, type Trial } from './boot.ts';
import { locateSlot, type UpdateContext } from './context.ts';
import { decideOffer } from './decide.ts';
import { runHealthWindow, type HealthProbe } from './health.ts';
import { DATA_SCHEMA, BASE_DATA_SCHEMA, MIGRATIONS } from './migrations.ts';
import { StatusReporter, type StatusChange } from './reporter.ts';
import { readDataSchema, type Migration } from './schema.ts';
import { SlotFiles, type OfferId } from './slot-files.ts';
import { commitTrial, rollBackTrial } from './trial.ts';
import type { FleetPort, UpdateInfo, UpdaterDeps } from './types.ts';
import { runOffer, type WorkDeps } from './work.ts';

export { UPDATE_RESTART_EXIT_CODE, type FleetPort, type UpdateInfo, type UpdaterDeps, type UpdaterOptions } from './types.ts';

export class Updater {
  readonly context: UpdateContext;
  private readonly deps: UpdaterDeps;
  private readonly log: Logger;
  private readonly files: SlotFiles | undefined;
  private state: SlotState = { versions: { a: null, b: null }, failed: [], inFlight: null };
  private trial: Trial | undefined;
  private reporter!: StatusReporter;
  private fleet: FleetPort | undefined;
  private fleetSeen = false;
  private active: { offer: UpdateOffer; abort: AbortController; done: Promise<void> } | undefined;
  private window: AbortController | undefined;
  private stopped = false;
  private restarting = false;
  private acted: OfferId | undefined;
  private deferred: UpdateOffer | undefined;

  private constructor(deps: UpdaterDeps, context: UpdateContext) {
    this.deps = deps;
    this.log = deps.log.child({ component: 'updater' });
    this.context = context;
    this.files = context.updatable ? new SlotFiles(context.root) : undefined;
  }

  /** Runs before the store opens: rollback notes, trial detection, data schema. Throws only when this start must fail. */
  static async prepare(deps: UpdaterDeps): Promise<Updater> {
    const u = new Updater(deps, deps.options?.context ?? locateSlot(deps.config.updateRoot));
    await u.boot();
    return u;
  }

  private get migrations(): { list: readonly Migration[]; base: number; target: number } {
    return this.deps.options?.migrations ?? { list: MIGRATIONS, base: BASE_DATA_SCHEMA, target: DATA_SCHEMA };
  }

  private makeReporter(initial: UpdateStatus | undefined): StatusReporter {
    return new StatusReporter(
      {
        send: async (s) => {
          if (this.fleet?.connected()) await this.fleet.publishStatus(s);
        },
        persist: async (s) => {
          if (this.files) await writeFileDurable(this.files.statusFile, `${JSON.stringify(s)}\n`);
        },
        runningVersion: this.deps.runningVersion,
        failedVersions: () => [...new Set(this.state.failed.map((f) => f.version))],
        ...(this.deps.options?.progressIntervalMs !== undefined ? { progressIntervalMs: this.deps.options.progressIntervalMs } : {}),
        onError: (err) => this.log.warn({ err: (err as Error).message }, 'update status not sent or not saved'),
      },
      initial,
    );
  }

  private async boot(): Promise<void> {
    if (!this.context.updatable || !this.files) {
      this.reporter = this.makeReporter(undefined);
      this.log.debug({ reason: this.context.updatable ? '' : this.context.reason }, 'updates off');
      return;
    }
    const { slot } = this.context;
    try {
      const facts = await prepareBoot({ files: this.files, slot, runningVersion: this.deps.runningVersion, dataDir: this.deps.dataDir, migrations: this.migrations, log: this.log });
      this.state = facts.state;
      this.trial = facts.trial;
      this.acted = await this.files.readActed();
      this.reporter = this.makeReporter(facts.lastStatus);
      if (facts.status) await this.reporter.report(facts.status);
      else if (!facts.lastStatus) await this.reporter.report({ rolloutId: null, version: null, phase: 'idle' });
    } catch (err) {
      this.reporter ??= this.makeReporter(undefined);
      const pending = await this.files.readPending().catch(() => undefined);
      if (pending && pending !== 'unreadable' && pending.slot === slot) {
        // A trial whose data migration failed (the migration undid itself): back to the old slot.
        await this.rollBackFiles(pending.version, (err as Error).message);
      }
      throw err;
    }
    if (this.trial && this.trial.version !== this.deps.runningVersion) {
      const reason = `slot ${slot} runs ${this.deps.runningVersion}, but ${this.trial.version} was installed there`;
      await this.rollBackFiles(this.trial.version, reason);
      throw new Error(`update rolled back: ${reason}`);
    }
    this.log.info({ slot, version: this.deps.runningVersion, trial: this.trial ?? null, failed: this.state.failed.map((f) => f.version) }, 'updates on');
  }

  /** What the local API shows (GET /api/update). */
  info(): UpdateInfo {
    const ctx = this.context;
    return {
      updatable: ctx.updatable,
      ...(ctx.updatable ? { slot: ctx.slot, root: ctx.root } : { reason: ctx.reason }),
      runningVersion: this.deps.runningVersion,
      status: this.reporter.current ?? null,
      trial: this.trial ? { version: this.trial.version, boots: this.trial.boots, windowMs: this.deps.config.updateHealthWindowMs } : null,
      versions: this.state.versions,
      failed: this.state.failed,
    };
  }

  /** For the local API and tests. */
  get status(): UpdateStatus | undefined {
    return this.reporter.current;
  }

  attachFleet(port: FleetPort): void {
    this.fleet = port;
  }

  /** The link is up (every (re)connect): the health window counts it; the status goes out again. */
  onConnected(): void {
    this.fleetSeen = true;
    void this.reporter.resend();
  }

  /** A retained offer arrived, or `null`: it was withdrawn. */
  onOffer(payload: unknown): void {
    if (this.stopped) return;
    if (payload === null) {
      this.deferred = undefined;
      if (this.active) {
        this.log.info({ version: this.active.offer.version }, 'update offer withdrawn: stopping its download/install');
        this.active.abort.abort(new Error('offer withdrawn'));
      }
      return;
    }
    const offer = Value.Default(UpdateOffer, structuredClone(payload));
    if (!Value.Check(UpdateOffer, offer)) {
      this.log.warn({ errors: [...Value.Errors(UpdateOffer, offer)].slice(0, 3).map((e) => `${e.path} ${e.message}`) }, 'update offer is not valid; ignored');
      return;
    }
    const cur = this.reporter.current;
    const final = cur && this.acted && cur.rolloutId === this.acted.rolloutId && cur.version === this.acted.version && FINAL_PHASES.has(cur.phase);
    const decision = decideOffer(offer, {
      notUpdatable: this.context.updatable ? undefined : this.context.reason,
      runningVersion: this.deps.runningVersion,
      failed: this.state.failed,
      trial: this.trial?.version,
      active: this.active?.offer,
      answered: final && this.acted ? { ...this.acted, phase: cur.phase } : undefined,
    });
    const same = (phase: string, reason?: string): boolean => cur?.rolloutId === offer.rolloutId && cur.version === offer.version && cur.phase === phase && (reason === undefined || cur.reason === reason);
    switch (decision.action) {
      case 'ignore':
        // An offer that comes during the trial is looked at again once the trial has ended: it
        // stays retained, but is delivered again only at the next reconnect.
        if (this.trial) this.deferred = offer;
        this.log.debug({ version: offer.version, why: decision.why }, 'update offer ignored');
        return;
      case 'report-committed':
        // The retained offer comes again with every reconnect: say it once.
        if (!same('committed')) void this.reporter.report({ rolloutId: offer.rolloutId, version: offer.version, phase: 'committed', reason: decision.why });
        return;
      case 'refuse':
        if (!same('refused', decision.reason)) {
          this.log.warn({ version: offer.version, reason: decision.reason }, 'update offer refused');
          void this.reporter.report({ rolloutId: offer.rolloutId, version: offer.version, phase: 'refused', reason: decision.reason });
        }
        return;
      case 'install':
        this.start(offer);
    }
  }

  private start(offer: UpdateOffer): void {
    this.acted = { rolloutId: offer.rolloutId, version: offer.version, offeredAt: offer.offeredAt };
    const acted = this.acted;
    const previous = this.active;
    previous?.abort.abort(new Error(`replaced by the offer of ${offer.version}`));
    const abort = new AbortController();
    const done = (async () => {
      await previous?.done;
      if (abort.signal.aborted || this.stopped) return;
      await this.files?.writeActed(acted);
      await runOffer(offer, abort.signal, this.workDeps());
    })()
      .catch((err: unknown) => this.log.error({ err, version: offer.version }, 'update failed unexpectedly'))
      .finally(() => {
        if (this.active?.abort === abort) this.active = undefined;
      });
    this.active = { offer, abort, done };
  }

  private workDeps(): WorkDeps {
    const ctx = this.context;
    if (!ctx.updatable || !this.files) throw new Error('not updatable');
    return {
      files: this.files,
      slot: ctx.slot,
      config: this.deps.config,
      dataDir: this.deps.dataDir,
      log: this.log,
      report: (c: StatusChange) => this.reporter.report(c),
      state: () => this.state,
      saveState: async (s) => {
        this.state = s;
        await this.files!.writeState(s);
      },
      tls: () => this.fleet?.tls(),
      dataSchema: () => readDataSchema(this.deps.dataDir, this.migrations.base),
      restart: (why) => this.restart(why),
      ...(this.deps.options?.retry ? { retry: this.deps.options.retry } : {}),
    };
  }

  /** After the box is up: on a trial, the health window; then commit or roll back. */
  started(probe: HealthProbe): void {
    const trial = this.trial;
    if (!trial || this.stopped) return;
    const windowMs = this.deps.config.updateHealthWindowMs;
    this.log.info({ version: trial.version, windowMs, boot: trial.boots }, 'health window started');
    this.window = new AbortController();
    const signal = this.window.signal;
    void runHealthWindow({ ...probe, fleetSeen: () => this.fleetSeen || probe.fleetSeen() }, windowMs, signal)
      .then(async (verdict) => {
        if (signal.aborted) return; // stopping: the next start is another trial boot
        if (verdict.ok) await this.commit(trial, verdict.checks);
        else if (await this.rollBackFiles(trial.version, verdict.reason)) await this.restart(`rollback of ${trial.version}: ${verdict.reason}`);
      })
      .catch((err: unknown) => this.log.error({ err }, 'health window failed unexpectedly'));
  }

  /** The box could not start on a trial: back to the other slot (the caller's exit restarts it). */
  async startFailed(err: unknown): Promise<void> {
    if (!this.trial) return;
    await this.rollBackFiles(this.trial.version, `start failed: ${(err as Error).message}`).catch((e: unknown) => this.log.error({ err: e }, 'rollback after a failed start failed'));
  }

  private async commit(trial: Trial, checks: string[]): Promise<void> {
    this.state = await commitTrial(this.files!, this.state, trial, this.deps.dataDir, this.log);
    this.trial = undefined;
    this.log.info({ version: trial.version, checks }, 'update committed');
    await this.reporter.report({ rolloutId: trial.rolloutId, version: trial.version, phase: 'committed', reason: `health checks passed: ${checks.join(', ')}` });
    const deferred = this.deferred;
    this.deferred = undefined;
    if (deferred) this.onOffer(deferred);
  }

  /** Back to the other slot with the reason left for it (the old slot reports it); false: nowhere to go. */
  private async rollBackFiles(version: string, reason: string): Promise<boolean> {
    const ctx = this.context;
    if (!ctx.updatable || !this.files) return false;
    this.log.error({ version, reason }, 'rolling back');
    if ((await rollBackTrial(this.files, ctx.slot, version, reason)) === 'no-slot') {
      this.log.error({ version, reason }, 'the other slot cannot run: staying on this one');
      await this.reporter.report({ rolloutId: this.trial?.rolloutId ?? null, version, phase: 'failed', reason: `${reason}; no slot to roll back to` });
      return false;
    }
    this.trial = undefined;
    return true;
  }

  /** The restart's stop() comes from inside the work (or the window) it would wait for. */
  private async restart(why: string): Promise<void> {
    this.restarting = true;
    await this.deps.restart(why);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.window?.abort();
    if (!this.restarting) {
      this.active?.abort.abort(new Error('the box is stopping'));
      await this.active?.done;
    }
    this.reporter.stop();
  }
}

const FINAL_PHASES: ReadonlySet<string> = new Set(['committed', 'rolled-back', 'failed', 'refused']);
