// Desired vs reported config. The fleet's desired config is checked and merged over the box's
// local config (planner), applied step by step (runtime, with rollback), persisted only once it
// applied, and answered with a retained report. At boot the last applied one is put back before the
// services start; if that fails the box runs on its local config and says so.
import { Ajv } from 'ajv';
import type { ApplianceConfig } from '../../shared/config/appliance.ts';
import { DesiredConfig, type ReportedConfig } from '../../shared/fleet/messages.ts';
import type { Logger } from '../../shared/log.ts';
import type { ReconfigureResult } from '../runtime/runtime.ts';
import type { Step } from '../runtime/steps.ts';
import { desiredPath, readJson, writeJsonDurable } from './state-files.ts';
import { effectiveRemote, plan, validateDesired } from './planner.ts';

const checkDesired = new Ajv({ allErrors: true, strict: false }).compile(DesiredConfig);

export interface AppliedDesired {
  version: number;
  desired: DesiredConfig;
  appliedAt: string;
}

export interface BootConfig {
  /** What the services should start with. */
  config: ApplianceConfig;
  /** The last applied desired config on disk, if any. */
  applied: AppliedDesired | undefined;
  /** Why the applied desired config could not be used at boot (then `config` is the local one). */
  error?: string;
}

/** Reads <dataDir>/agent/desired.json and merges it over the local config, if it is still valid. */
export async function loadBootConfig(dataDir: string, local: ApplianceConfig): Promise<BootConfig> {
  let saved: unknown;
  try {
    saved = await readJson(desiredPath(dataDir));
  } catch (err) {
    return { config: local, applied: undefined, error: `stored desired config unreadable: ${(err as Error).message}` };
  }
  if (saved === undefined) return { config: local, applied: undefined };
  const rec = saved as Partial<AppliedDesired>;
  if (typeof rec.version !== 'number' || !checkDesired(rec.desired)) {
    return { config: local, applied: undefined, error: 'stored desired config is malformed; ignored' };
  }
  const applied = rec as AppliedDesired;
  const v = validateDesired(local, applied.desired);
  if (!v.ok) return { config: local, applied, error: `stored desired config v${applied.version} no longer valid: ${v.error}` };
  return { config: v.next, applied };
}

export interface Reconfigurable {
  readonly config: ApplianceConfig;
  reconfigure(next: ApplianceConfig, steps: Step[]): Promise<ReconfigureResult>;
}

export interface ReconcilerDeps {
  dataDir: string;
  local: ApplianceConfig;
  runtime: Reconfigurable;
  firmware: string;
  log: Logger;
  boot: BootConfig;
}

export class DesiredReconciler {
  private readonly deps: ReconcilerDeps;
  private handled: number;
  private last: Omit<ReportedConfig, 'at' | 'firmware' | 'effective'>;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
    const applied = deps.boot.applied;
    this.handled = applied?.version ?? 0;
    if (deps.boot.error) {
      this.last = { version: applied?.version ?? 0, status: 'failed', error: `at boot: ${deps.boot.error}; running on the local config`, steps: [] };
    } else if (applied) {
      this.last = { version: applied.version, status: 'applied', steps: [] };
    } else {
      this.last = { version: 0, status: 'none', steps: [] };
    }
  }

  /** The highest desired version handled (applied, rejected or failed). */
  get handledVersion(): number {
    return this.handled;
  }

  /** The current report, with the effective config as it is now. */
  report(): ReportedConfig {
    return { ...this.last, at: new Date().toISOString(), firmware: this.deps.firmware, effective: effectiveRemote(this.deps.runtime.config) };
  }

  /** Handles one desired message, one at a time; undefined when it was ignored (old or unusable). */
  handle(payload: unknown): Promise<ReportedConfig | undefined> {
    const run = this.chain.then(() => this.handleOne(payload));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async handleOne(payload: unknown): Promise<ReportedConfig | undefined> {
    const { log } = this.deps;
    const version = (payload as { version?: unknown } | null)?.version;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
      log.warn({ version }, 'desired config without a usable version; ignored');
      return undefined;
    }
    // Retained messages come again on every reconnect: each version is handled once.
    if (version <= this.handled) return undefined;
    this.handled = version;
    if (!checkDesired(payload)) {
      const error = (checkDesired.errors ?? []).map((e) => `${e.instancePath || 'message'} ${e.message ?? 'is invalid'}`).join('; ');
      return this.settle({ version, status: 'rejected', error: `malformed desired config: ${error}`, steps: [] });
    }
    const desired = payload as DesiredConfig;
    const v = validateDesired(this.deps.local, desired);
    if (!v.ok) {
      log.warn({ version, error: v.error }, 'desired config rejected');
      return this.settle({ version, status: 'rejected', error: v.error, steps: [] });
    }
    const steps = plan(this.deps.runtime.config, v.next);
    log.info({ version, issuedBy: desired.issuedBy, steps: steps.map((s) => s.kind) }, 'applying desired config');
    const result = await this.deps.runtime.reconfigure(v.next, steps);
    if (!result.ok) {
      const how = result.rolledBack ? 'rolled back to the previous config' : 'rollback incomplete';
      return this.settle({ version, status: 'failed', error: `${result.failedStep} failed: ${result.error}; ${how}`, steps: [...result.steps, `${result.failedStep} — failed`] });
    }
    const applied: AppliedDesired = { version, desired, appliedAt: new Date().toISOString() };
    try {
      await writeJsonDurable(desiredPath(this.deps.dataDir), applied);
    } catch (err) {
      // It runs; only the next boot would not know it. Say so rather than pretend.
      log.error({ err, version }, 'applied desired config could not be saved');
      return this.settle({ version, status: 'applied', error: `applied but not saved (a reboot returns to the previous config): ${(err as Error).message}`, steps: result.steps });
    }
    return this.settle({ version, status: 'applied', steps: result.steps });
  }

  private settle(r: Omit<ReportedConfig, 'at' | 'firmware' | 'effective'>): ReportedConfig {
    this.last = r;
    return this.report();
  }
}
