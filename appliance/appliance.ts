// The box runtime: opens the store and the disk guard, starts the restartable services (runtime/),
// the admin API and, when a fleet is configured, the agent; owns their life cycle.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ApplianceConfig } from '../shared/config/appliance.ts';
import type { Logger } from '../shared/log.ts';
import { startAgent, type AgentOptions, type RunningAgent } from './agent/agent.ts';
import { loadBootConfig, type BootConfig } from './agent/desired.ts';
import { FIRMWARE_VERSION } from './agent/firmware.ts';
import { echoTargetOf, cEcho } from './agent/update/health.ts';
import { UPDATE_RESTART_EXIT_CODE, Updater, type UpdaterOptions } from './agent/update/updater.ts';
import { buildApi } from './api/server.ts';
import { createMetrics } from './metrics.ts';
import { ApplianceRuntime } from './runtime/runtime.ts';
import { DiskGuard } from './store/disk-guard.ts';
import { Quarantine } from './store/quarantine.ts';
import { recoverOrphans } from './store/recovery.ts';
import { Store } from './store/store.ts';
import { notifySettings, startWatchdog, type RunningWatchdog } from './watchdog.ts';

export interface RunningAppliance {
  /** The DICOM port bound at start (runtime.dicomPort follows later changes). */
  dicomPort: number;
  httpPort: number;
  store: Store;
  runtime: ApplianceRuntime;
  /** Present when config.fleetUrl is set. */
  agent: RunningAgent | undefined;
  updates: Updater;
  /** Present when systemd runs the service (Type=notify, WatchdogSec in mbox.service). */
  watchdog: RunningWatchdog | undefined;
  stop(): Promise<void>;
}

export interface ApplianceOptions {
  agent?: AgentOptions;
  updates?: UpdaterOptions;
  /** Where systemd's NOTIFY_SOCKET / WATCHDOG_USEC are read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * How the box ends itself for a slot switch or a rollback; by default it stops and exits with
   * UPDATE_RESTART_EXIT_CODE so systemd (Restart=always) runs the launcher again.
   */
  onUpdateRestart?: (why: string) => Promise<void>;
}

export async function startAppliance(config: ApplianceConfig, log: Logger, opts: ApplianceOptions = {}): Promise<RunningAppliance> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  let running: RunningAppliance | undefined;
  const restart = async (why: string): Promise<void> => {
    if (opts.onUpdateRestart) return opts.onUpdateRestart(why);
    log.warn({ why, exitCode: UPDATE_RESTART_EXIT_CODE }, 'restarting for an update');
    // A stop that hangs must not keep the box from its switch: the store is fsynced per write.
    await Promise.race([running?.stop(), new Promise((r) => setTimeout(r, 20_000).unref())]).catch((err: unknown) => log.error({ err }, 'unclean stop before the restart'));
    process.exit(UPDATE_RESTART_EXIT_CODE);
  };
  // Before the store opens: a rollback's data restore and a trial's migrations come first.
  const updates = await Updater.prepare({ config, dataDir, log, runningVersion: FIRMWARE_VERSION, restart, ...(opts.updates ? { options: opts.updates } : {}) });
  try {
    running = await startCore(config, log, opts, dataDir, updates);
  } catch (err) {
    await updates.startFailed(err);
    await updates.stop();
    throw err;
  }
  const box = running;
  updates.started({
    echo: () => cEcho(echoTargetOf(box.runtime.config, box.runtime.dicomPort, box.runtime.dimseTls)),
    store: async () => {
      await box.store.listStudies(1);
    },
    fleetSeen: () => box.agent?.status().connectedAt != null,
    fleetConfigured: Boolean(config.fleetUrl),
  });
  const systemd = notifySettings(opts.env ?? process.env);
  if (systemd) {
    box.watchdog = startWatchdog({
      settings: systemd,
      check: () => box.store.listStudies(1).then(() => undefined),
      status: () => serviceStatus(box),
      log: log.child({ component: 'watchdog' }),
    });
  }
  return running;
}

function serviceStatus(box: RunningAppliance): string {
  const { runtime, agent } = box;
  const dicom = runtime.dicomListening ? `DICOM ${runtime.config.aeTitle} on :${runtime.dicomPort}` : 'DICOM not listening';
  const fleet = agent ? (agent.status().connected ? 'fleet connected' : `fleet ${agent.status().link}`) : 'no fleet';
  return `${dicom}; ${fleet}`;
}

async function startCore(config: ApplianceConfig, log: Logger, opts: ApplianceOptions, dataDir: string, updates: Updater): Promise<RunningAppliance> {
  const startedAt = Date.now();
  const metrics = createMetrics();
  const store = await Store.open({ dataDir, quietTimeMs: config.quietTimeMs, log: log.child({ component: 'store' }) });
  const disk = new DiskGuard({
    path: dataDir,
    highWaterPercent: config.diskHighWaterPercent,
    minFreeBytes: config.diskMinFreeBytes,
    log: log.child({ component: 'disk-guard' }),
  });
  const quarantine = new Quarantine(dataDir);
  const runtime = new ApplianceRuntime({ store, disk, quarantine, metrics, log }, config);
  let boot: BootConfig = { config, applied: undefined };
  try {
    await disk.start();
    if (!store.cleanStart) await recoverOrphans(store, quarantine, log.child({ component: 'recovery' }));
    // The fleet's last applied config goes back on before anything listens; if it cannot, the box
    // starts on its local config and the agent reports why.
    if (config.fleetUrl) boot = await loadBootConfig(dataDir, config);
    try {
      await runtime.start(boot.config);
    } catch (err) {
      if (boot.config === config) throw err;
      boot = { ...boot, config, error: `starting with desired config v${boot.applied?.version ?? '?'} failed: ${(err as Error).message}` };
      await runtime.start(config);
    }
  } catch (err) {
    disk.stop();
    await store.close();
    throw err;
  }

  store.on('study-complete', (study) => log.info({ studyInstanceUid: study.studyInstanceUid, instances: study.instances }, 'study complete'));
  let agent: RunningAgent | undefined;
  const api = buildApi({
    store,
    disk,
    quarantine,
    metrics,
    log,
    health: () => ({ dicomListening: runtime.dicomListening, watchFolders: runtime.watcherCount }),
    agent: () => agent?.status(),
    update: () => updates.info(),
  });
  try {
    await api.listen({ port: config.httpPort, host: config.httpHost });
  } catch (err) {
    await runtime.stop();
    disk.stop();
    await store.close();
    throw err;
  }
  const address = api.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : config.httpPort;
  // In the background: enrolment and the fleet link never hold up DICOM intake.
  if (config.fleetUrl) {
    agent = await startAgent({ config, dataDir, runtime, store, disk, metrics, log, boot, startedAt, updates, ...(opts.agent ? { options: opts.agent } : {}) });
  }
  const dicomPort = runtime.dicomPort;
  log.info(
    { dicomPort, httpPort, aeTitle: runtime.config.aeTitle, tls: runtime.dimseTls, dataDir, watchDirs: config.watchDirs, fleet: config.fleetUrl ?? null },
    'appliance ready',
  );

  let stopped = false;
  const box: RunningAppliance = {
    dicomPort,
    httpPort,
    store,
    runtime,
    get agent() {
      return agent;
    },
    updates,
    watchdog: undefined,
    async stop() {
      if (stopped) return;
      stopped = true;
      await box.watchdog?.stop();
      await updates.stop();
      await agent?.stop();
      await runtime.stop();
      await api.close();
      disk.stop();
      await store.close();
      log.info('appliance stopped');
    },
  };
  return box;
}
