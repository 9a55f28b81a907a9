// The uplink as the box runs it: one preparer for all destinations, one uploader (with its own
// client, bandwidth budget and windows) per destination, and the retention sweep.
import { readFileSync } from 'node:fs';
import { destinationsOf, type ApplianceConfig, type DestinationConfig } from '../../shared/config/appliance.ts';
import { StowClient } from '../../shared/dicomweb/stow-client.ts';
import type { StowAuth } from '../../shared/dicomweb/types.ts';
import type { Logger } from '../../shared/log.ts';
import type { Transcoder } from '../../shared/types/pipeline.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import { sweepCommitted } from '../store/retention.ts';
import type { Store } from '../store/store.ts';
import { backoffDelay } from './backoff.ts';
import { Throttle } from './bandwidth.ts';
import { Preparer } from './prepare.ts';
import { Uploader } from './uploader.ts';
import { isOpen } from './windows.ts';

const RETENTION_SWEEP_MS = 10 * 60_000;

export interface UplinkDeps {
  config: ApplianceConfig;
  store: Store;
  transcoder: Transcoder;
  metrics: ApplianceMetrics;
  log: Logger;
  /** Read at every retention sweep, so a new retention time needs no restart (default: config). */
  retentionHours?: () => number;
  /** A delivery failed (retry or dead letter) or a destination confirmed again (message undefined). */
  onDeliveryError?: (destination: string, message: string | undefined) => void;
}

export interface RunningUplink {
  preparer: Preparer;
  uploaders: Map<string, Uploader>;
  stop(): Promise<void>;
}

function clientFor(dest: DestinationConfig): StowClient {
  const auth: StowAuth = dest.token
    ? { kind: 'bearer', token: dest.token }
    : dest.username
      ? { kind: 'basic', username: dest.username, password: dest.password ?? '' }
      : { kind: 'none' };
  return new StowClient({
    baseUrl: dest.url,
    auth,
    ...(dest.caFile ? { ca: readFileSync(dest.caFile, 'utf8') } : {}),
    ...(dest.certFile ? { cert: readFileSync(dest.certFile, 'utf8') } : {}),
    ...(dest.keyFile ? { key: readFileSync(dest.keyFile, 'utf8') } : {}),
    rejectUnauthorized: !dest.insecureSkipVerify,
  });
}

export async function startUplink(deps: UplinkDeps): Promise<RunningUplink> {
  const { config, store, log } = deps;
  const destinations = destinationsOf(config);
  const uploaders = new Map<string, Uploader>();
  // Every client first: a destination whose files cannot be read fails the start before anything runs.
  const clients = destinations.map((dest) => clientFor(dest));
  for (const [i, dest] of destinations.entries()) {
    const client = clients[i]!;
    const throttle = dest.bandwidthBytesPerSec > 0 ? new Throttle({ bytesPerSecond: dest.bandwidthBytesPerSec }) : undefined;
    const uploader = new Uploader({
      destination: dest.name,
      store,
      sender: client,
      log: log.child({ destination: dest.name }),
      maxBatchBytes: dest.maxBatchBytes,
      maxBatchCount: dest.maxBatchCount,
      concurrency: dest.concurrency,
      ...(throttle ? { throttle: (body) => throttle.throttle(body) } : {}),
      isOpen: (now) => dest.windows.length === 0 || isOpen(dest.windows, now),
      backoffMs: (attempts) => backoffDelay(attempts + 1, { baseMs: Math.min(1000, dest.retryMaxDelayMs), capMs: dest.retryMaxDelayMs }) ?? 0,
      onSent: (bytes, outcomes) => {
        deps.metrics.uplinkBytes.inc({ destination: dest.name }, bytes);
        for (const o of outcomes) deps.metrics.uplinkInstances.inc({ destination: dest.name, result: o.result });
        const failed = outcomes.find((o) => o.result !== 'committed');
        if (failed) deps.onDeliveryError?.(dest.name, failed.detail ?? failed.result);
        else if (outcomes.length > 0) deps.onDeliveryError?.(dest.name, undefined);
      },
    });
    uploaders.set(dest.name, uploader);
    uploader.start();
  }
  const preparer = new Preparer({
    store,
    transcoder: deps.transcoder,
    destinations,
    log: log.child({ component: 'prepare' }),
    parallel: Math.max(1, config.compressWorkers),
    onQueued: () => {
      for (const u of uploaders.values()) u.wake();
    },
  });
  try {
    await preparer.start();
  } catch (err) {
    await Promise.all([...uploaders.values()].map((u) => u.stop()));
    for (const c of clients) c.close();
    throw err;
  }
  const retentionMs = () => (deps.retentionHours ? deps.retentionHours() : config.retentionHours) * 3_600_000;
  const sweep = setInterval(() => void sweepCommitted(store, retentionMs(), log).catch((err: unknown) => log.error({ err }, 'retention sweep failed')), RETENTION_SWEEP_MS);
  sweep.unref();
  if (destinations.length > 0) log.info({ destinations: destinations.map((d) => `${d.name} ${d.url} (${d.syntax})`) }, 'uplink started');
  return {
    preparer,
    uploaders,
    async stop() {
      clearInterval(sweep);
      await preparer.stop();
      await Promise.all([...uploaders.values()].map((u) => u.stop()));
      for (const c of clients) c.close();
    },
  };
}
