// The box's restartable services and their config. The store, the disk guard and the admin API
// live outside and stay up throughout; this part stops and starts only what a config change names,
// and puts the previous config back when a step fails, so a bad remote config never bricks a box.
import { EventEmitter } from 'node:events';
import { destinationsOf, type ApplianceConfig } from '../../shared/config/appliance.ts';
import { setLogLevel, type Logger } from '../../shared/log.ts';
import type { IngestContext } from '../ingest/intake.ts';
import type { FolderWatcher } from '../ingest/watcher.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { DiskGuard } from '../store/disk-guard.ts';
import type { Quarantine } from '../store/quarantine.ts';
import type { Store } from '../store/store.ts';
import { closeWatchers, openDimse, openPipeline, openWatchers, type RunningDimse, type RunningPipeline } from './services.ts';
import { describeStep, type Step } from './steps.ts';

export interface RuntimeParts {
  store: Store;
  disk: DiskGuard;
  quarantine: Quarantine;
  metrics: ApplianceMetrics;
  /** The box's root logger: a log-level step changes it and all its children. */
  log: Logger;
}

export type ReconfigureResult =
  | { ok: true; steps: string[] }
  | { ok: false; steps: string[]; failedStep: string; error: string; rolledBack: boolean };

export interface LastError {
  at: string;
  source: string;
  message: string;
}

export class ApplianceRuntime extends EventEmitter<{ config: [ApplianceConfig, Step[]] }> {
  private readonly parts: RuntimeParts;
  private readonly log: Logger;
  private readonly ctx: IngestContext;
  private cfg: ApplianceConfig;
  private dimse: RunningDimse | undefined;
  private watchers: FolderWatcher[] = [];
  private pipeline: RunningPipeline | undefined;
  /** The port a `dicomPort: 0` config got the first time: restarts and rollbacks bind it again. */
  private zeroPort = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private errors = new Map<string, LastError>();

  constructor(parts: RuntimeParts, config: ApplianceConfig) {
    super();
    this.parts = parts;
    this.log = parts.log.child({ component: 'runtime' });
    this.cfg = config;
    this.ctx = { config, store: parts.store, quarantine: parts.quarantine, disk: parts.disk, metrics: parts.metrics, log: parts.log.child({ component: 'ingest' }) };
  }

  get config(): ApplianceConfig {
    return this.cfg;
  }

  get dicomPort(): number {
    return this.dimse?.port ?? 0;
  }

  get dicomListening(): boolean {
    return this.dimse !== undefined;
  }

  get watcherCount(): number {
    return this.watchers.length;
  }

  get dimseTls(): boolean {
    return this.dimse?.server.tls ?? false;
  }

  /** The running uplink, if there are destinations (tests, telemetry). */
  get uplink(): RunningPipeline['uplink'] | undefined {
    return this.pipeline?.uplink;
  }

  /** The most recent pipeline error still standing (a destination failing), or undefined. */
  get lastError(): LastError | undefined {
    let latest: LastError | undefined;
    for (const e of this.errors.values()) if (!latest || e.at > latest.at) latest = e;
    return latest;
  }

  /** Starts every service with `config`; on a failure stops what started and throws. */
  start(config: ApplianceConfig): Promise<void> {
    return this.serial(() => this.startAll(config));
  }

  /** Moves to `next` by the planner's steps; on a failing step puts the previous config back. */
  reconfigure(next: ApplianceConfig, steps: Step[]): Promise<ReconfigureResult> {
    return this.serial(async () => {
      const prev = this.cfg;
      this.cfg = next;
      const done: string[] = [];
      for (const [i, step] of steps.entries()) {
        try {
          await this.apply(step, next);
          done.push(describeStep(step));
        } catch (err) {
          const error = (err as Error).message;
          this.log.error({ step: describeStep(step), err: error }, 'config step failed: rolling back');
          this.cfg = prev;
          const rollbackErrors: string[] = [];
          for (let j = i; j >= 0; j--) {
            await this.apply(steps[j]!, prev).catch((e: unknown) => rollbackErrors.push(`${steps[j]!.kind}: ${(e as Error).message}`));
          }
          if (rollbackErrors.length > 0) this.log.error({ rollbackErrors }, 'rollback incomplete');
          else this.log.warn({ step: describeStep(step) }, 'previous config restored');
          this.emit('config', prev, steps.slice(0, i + 1));
          return {
            ok: false,
            steps: done,
            failedStep: describeStep(step),
            error: rollbackErrors.length > 0 ? `${error}; rollback incomplete: ${rollbackErrors.join('; ')}` : error,
            rolledBack: rollbackErrors.length === 0,
          };
        }
      }
      this.ctx.config = next;
      if (steps.length > 0) this.log.info({ steps: done }, 'config applied');
      this.emit('config', next, steps);
      return { ok: true, steps: done };
    });
  }

  /** Stops and starts every service with the current config; the store stays open. */
  restart(): Promise<void> {
    return this.serial(async () => {
      this.log.info('restarting services');
      await this.stopAll();
      try {
        await this.startAll(this.cfg);
      } catch (err) {
        // A port or file held by someone else for a moment: one more try before giving up.
        this.log.warn({ err: (err as Error).message }, 'restart failed; trying again in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
        await this.startAll(this.cfg);
      }
      this.log.info({ dicomPort: this.dicomPort }, 'services restarted');
    });
  }

  stop(): Promise<void> {
    return this.serial(() => this.stopAll());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private portFor(config: ApplianceConfig): number {
    return config.dicomPort === 0 ? this.zeroPort : config.dicomPort;
  }

  private async startAll(config: ApplianceConfig): Promise<void> {
    this.cfg = config;
    this.ctx.config = config;
    setLogLevel(this.parts.log, config.logLevel);
    this.parts.store.setQuietTime(config.quietTimeMs);
    this.parts.disk.setThresholds(config.diskHighWaterPercent, config.diskMinFreeBytes);
    try {
      await this.startDimse(config);
      this.watchers = await openWatchers(config, this.ctx);
      this.pipeline = await this.openPipeline(config);
    } catch (err) {
      await this.stopAll();
      throw err;
    }
  }

  private async stopAll(): Promise<void> {
    await closeWatchers(this.watchers);
    this.watchers = [];
    await this.dimse?.server.close();
    this.dimse = undefined;
    await this.pipeline?.stop();
    this.pipeline = undefined;
  }

  private async startDimse(config: ApplianceConfig): Promise<void> {
    this.dimse = await openDimse(config, this.ctx, this.portFor(config));
    if (config.dicomPort === 0) this.zeroPort = this.dimse.port;
  }

  private openPipeline(config: ApplianceConfig): Promise<RunningPipeline | undefined> {
    // Errors of destinations that are gone no longer stand.
    const names = new Set(destinationsOf(config).map((d) => d.name));
    for (const name of this.errors.keys()) if (!names.has(name)) this.errors.delete(name);
    return openPipeline(config, {
      store: this.parts.store,
      metrics: this.parts.metrics,
      log: this.parts.log,
      retentionHours: () => this.cfg.retentionHours,
      onDeliveryError: (destination, message) => {
        if (message === undefined) this.errors.delete(destination);
        else this.errors.set(destination, { at: new Date().toISOString(), source: `destination ${destination}`, message });
      },
    });
  }

  /** Brings one part of the box in line with `to`. Idempotent, so a rollback can run it again. */
  private async apply(step: Step, to: ApplianceConfig): Promise<void> {
    const { store, disk, log } = this.parts;
    switch (step.kind) {
      case 'log-level':
        setLogLevel(log, to.logLevel);
        return;
      case 'quiet-time':
        store.setQuietTime(to.quietTimeMs);
        return;
      case 'disk-guard':
        disk.setThresholds(to.diskHighWaterPercent, to.diskMinFreeBytes);
        await disk.check();
        return;
      case 'retention':
      case 'telemetry-interval':
        // Read from the current config when used (retention sweep, telemetry timer via 'config').
        return;
      case 'dimse-settings':
        this.ctx.config = to;
        return;
      case 'dimse-listener': {
        this.ctx.config = to;
        const old = this.dimse;
        if (!old) return this.startDimse(to);
        if (old.port !== this.portFor(to)) {
          // Bind the new port before letting the old one go: a failure leaves the old listener
          // untouched and the box never stops listening.
          await this.startDimse(to);
          await old.server.close();
        } else if (!sameListener(old.config, to)) {
          await old.server.close();
          this.dimse = undefined;
          await this.startDimse(to);
        }
        return;
      }
      case 'watchers':
        await closeWatchers(this.watchers);
        this.watchers = [];
        this.watchers = await openWatchers(to, this.ctx);
        return;
      case 'uplink':
        await this.pipeline?.stop();
        this.pipeline = undefined;
        this.pipeline = await this.openPipeline(to);
        return;
    }
  }
}

const LISTENER_KEYS = ['dicomHost', 'tlsCert', 'tlsKey', 'tlsCa', 'tlsRequireClientCert'] as const;

function sameListener(a: ApplianceConfig, b: ApplianceConfig): boolean {
  return LISTENER_KEYS.every((k) => a[k] === b[k]);
}
