// The box runtime: opens the store and the disk guard, starts the restartable services (runtime/),
// the admin API and, when a fleet is configured, the agent; owns their life cycle.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ApplianceConfig } from '../shared/config/appliance.ts';
import type { Logger } from '../shared/log.ts';
import { startAgent, type AgentOptions, type RunningAgent } from './agent/agent.ts';
import { loadBootConfig, type BootConfig } from './agent/desired.ts';
import { buildApi } from './api/server.ts';
import { createMetrics } from './metrics.ts';
import { ApplianceRuntime } from './runtime/runtime.ts';
import { DiskGuard } from './store/disk-guard.ts';
import { Quarantine } from './store/quarantine.ts';
import { recoverOrphans } from './store/recovery.ts';
import { Store } from './store/store.ts';

export interface RunningAppliance {
  /** The DICOM port bound at start (runtime.dicomPort follows later changes). */
  dicomPort: number;
  httpPort: number;
  store: Store;
  runtime: ApplianceRuntime;
  /** Present when config.fleetUrl is set. */
  agent: RunningAgent | undefined;
  stop(): Promise<void>;
}

export interface ApplianceOptions {
  agent?: AgentOptions;
}

export async function startAppliance(config: ApplianceConfig, log: Logger, opts: ApplianceOptions = {}): Promise<RunningAppliance> {
  const startedAt = Date.now();
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
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
    agent = await startAgent({ config, dataDir, runtime, store, disk, metrics, log, boot, startedAt, ...(opts.agent ? { options: opts.agent } : {}) });
  }
  const dicomPort = runtime.dicomPort;
  log.info(
    { dicomPort, httpPort, aeTitle: runtime.config.aeTitle, tls: runtime.dimseTls, dataDir, watchDirs: config.watchDirs, fleet: config.fleetUrl ?? null },
    'appliance ready',
  );

  let stopped = false;
  return {
    dicomPort,
    httpPort,
    store,
    runtime,
    get agent() {
      return agent;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await agent?.stop();
      await runtime.stop();
      await api.close();
      disk.stop();
      await store.close();
      log.info('appliance stopped');
    },
  };
}
