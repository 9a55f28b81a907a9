// The box runtime: wires the store, the ways in and the admin API, and owns their life cycle.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { destinationsOf, type ApplianceConfig } from '../shared/config/appliance.ts';
import type { Logger } from '../shared/log.ts';
import { buildApi } from './api/server.ts';
import { TranscodePool } from './compress/pool.ts';
import { DimseServer } from './ingest/dimse-server.ts';
import type { IngestContext } from './ingest/intake.ts';
import { FolderWatcher } from './ingest/watcher.ts';
import { createMetrics } from './metrics.ts';
import { DiskGuard } from './store/disk-guard.ts';
import { Quarantine } from './store/quarantine.ts';
import { recoverOrphans } from './store/recovery.ts';
import { Store } from './store/store.ts';
import { startUplink } from './uplink/service.ts';

export interface RunningAppliance {
  dicomPort: number;
  httpPort: number;
  store: Store;
  stop(): Promise<void>;
}

export async function startAppliance(config: ApplianceConfig, log: Logger): Promise<RunningAppliance> {
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
  await disk.start();
  const quarantine = new Quarantine(dataDir);
  if (!store.cleanStart) await recoverOrphans(store, quarantine, log.child({ component: 'recovery' }));
  const ctx: IngestContext = { config, store, quarantine, disk, metrics, log: log.child({ component: 'ingest' }) };

  const dimse = new DimseServer(config, ctx);
  const dicomPort = await dimse.listen();
  const watchers = config.watchDirs.map(
    (dir) =>
      new FolderWatcher({ dir: resolve(dir), settleMs: config.watchSettleMs, intervalMs: config.watchIntervalMs, giveUpMs: config.watchGiveUpMs }, ctx),
  );
  for (const w of watchers) await w.start();

  store.on('study-complete', (study) => log.info({ studyInstanceUid: study.studyInstanceUid, instances: study.instances }, 'study complete'));
  // Compression and upload run only when there is somewhere to send to.
  const transcoder = destinationsOf(config).length > 0 ? new TranscodePool({ ...(config.compressWorkers > 0 ? { size: config.compressWorkers } : {}) }) : undefined;
  const uplink = transcoder ? await startUplink({ config, store, transcoder, metrics, log: log.child({ component: 'uplink' }) }) : undefined;

  const api = buildApi({
    store,
    disk,
    quarantine,
    metrics,
    log,
    health: () => ({ dicomListening: true, watchFolders: watchers.length }),
  });
  await api.listen({ port: config.httpPort, host: config.httpHost });
  const address = api.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : config.httpPort;
  log.info({ dicomPort, httpPort, aeTitle: config.aeTitle, tls: dimse.tls, dataDir, watchDirs: config.watchDirs }, 'appliance ready');

  let stopped = false;
  return {
    dicomPort,
    httpPort,
    store,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const w of watchers) await w.stop();
      await dimse.close();
      await uplink?.stop();
      await transcoder?.close();
      await api.close();
      disk.stop();
      await store.close();
      log.info('appliance stopped');
    },
  };
}
