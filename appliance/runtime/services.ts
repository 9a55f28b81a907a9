// Starting and stopping the box's restartable services: the DICOM listener, the watch folders and
// the pipeline (transcoder pool + uplink). Each opener either starts whole or cleans up and throws.
import { resolve } from 'node:path';
import { destinationsOf, type ApplianceConfig } from '../../shared/config/appliance.ts';
import type { Logger } from '../../shared/log.ts';
import { TranscodePool } from '../compress/pool.ts';
import { DimseServer } from '../ingest/dimse-server.ts';
import type { IngestContext } from '../ingest/intake.ts';
import { FolderWatcher } from '../ingest/watcher.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { Store } from '../store/store.ts';
import { startUplink, type RunningUplink } from '../uplink/service.ts';

export interface RunningDimse {
  server: DimseServer;
  port: number;
  /** The config it was bound with (host, TLS files). */
  config: ApplianceConfig;
}

/** Binds the listener on `port` (the config's port, or the one a port-0 config got before). */
export async function openDimse(config: ApplianceConfig, ctx: IngestContext, port: number): Promise<RunningDimse> {
  const server = new DimseServer({ ...config, dicomPort: port }, ctx);
  try {
    return { server, port: await server.listen(), config };
  } catch (err) {
    await server.close().catch(() => undefined);
    const e = err as NodeJS.ErrnoException;
    throw new Error(e.code === 'EADDRINUSE' ? `DICOM port ${port} is already in use` : `DICOM listener on port ${port}: ${e.message}`, { cause: err });
  }
}

export async function openWatchers(config: ApplianceConfig, ctx: IngestContext): Promise<FolderWatcher[]> {
  const started: FolderWatcher[] = [];
  try {
    for (const dir of config.watchDirs) {
      const w = new FolderWatcher(
        { dir: resolve(dir), settleMs: config.watchSettleMs, intervalMs: config.watchIntervalMs, giveUpMs: config.watchGiveUpMs },
        ctx,
      );
      await w.start();
      started.push(w);
    }
    return started;
  } catch (err) {
    await closeWatchers(started);
    throw err;
  }
}

export async function closeWatchers(watchers: FolderWatcher[]): Promise<void> {
  for (const w of watchers) await w.stop();
}

export interface PipelineDeps {
  store: Store;
  metrics: ApplianceMetrics;
  log: Logger;
  retentionHours: () => number;
  onDeliveryError: (destination: string, message: string | undefined) => void;
}

export interface RunningPipeline {
  transcoder: TranscodePool;
  uplink: RunningUplink;
  stop(): Promise<void>;
}

/** Compression and upload run only when there is somewhere to send to. */
export async function openPipeline(config: ApplianceConfig, deps: PipelineDeps): Promise<RunningPipeline | undefined> {
  if (destinationsOf(config).length === 0) return undefined;
  const transcoder = new TranscodePool({ ...(config.compressWorkers > 0 ? { size: config.compressWorkers } : {}) });
  let uplink: RunningUplink;
  try {
    uplink = await startUplink({
      config,
      store: deps.store,
      transcoder,
      metrics: deps.metrics,
      log: deps.log.child({ component: 'uplink' }),
      retentionHours: deps.retentionHours,
      onDeliveryError: deps.onDeliveryError,
    });
  } catch (err) {
    await transcoder.close();
    throw new Error(`uplink: ${(err as Error).message}`, { cause: err });
  }
  return {
    transcoder,
    uplink,
    async stop() {
      await uplink.stop();
      await transcoder.close();
    },
  };
}
