// One Telemetry message: host figures, the pipeline's state and the daily figures. Collecting never
// throws: a part that cannot be read is null or empty in the message, and the rest still goes out.
import type { DailyFigures, PipelineFigures, SystemFigures, Telemetry } from '../../shared/fleet/messages.ts';
import type { DestinationSummary } from '../../shared/types/pipeline.ts';
import type { QueueSummary } from '../../shared/types/store.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { DiskGuard } from '../store/disk-guard.ts';
import type { Store } from '../store/store.ts';
import type { DailyBook } from './daily.ts';
import { bounded, type SystemProbe } from './system.ts';

export interface TelemetrySources {
  store: Pick<Store, 'queueSummary' | 'deliveries'>;
  disk: Pick<DiskGuard, 'ok'>;
  metrics: Pick<ApplianceMetrics, 'uplinkBytes'>;
  system: SystemProbe;
  daily: DailyBook;
  lastError: () => string | null;
  firmware: string;
  /** Process start (ms since epoch), for uptimeS. */
  startedAt: number;
}

const EMPTY_SYSTEM: SystemFigures = {
  cpuLoadPercent: null,
  memUsedBytes: null,
  memTotalBytes: null,
  diskUsedBytes: null,
  diskTotalBytes: null,
  diskUsedPercent: null,
  osUptimeS: null,
  netRxBytesPerSec: null,
  netTxBytesPerSec: null,
  cpuTempC: null,
};

const ageS = (at: string | undefined, now: Date): number | null => {
  const t = at ? Date.parse(at) : NaN;
  return Number.isFinite(t) ? Math.max(0, Math.round((now.getTime() - t) / 1000)) : null;
};

/** The pipeline part, from the store's counters (pure). */
export function pipelineFigures(
  summary: QueueSummary | null,
  destinations: DestinationSummary[] | null,
  bytesOut: number,
  lastError: string | null,
  diskAccepting: boolean,
  now: Date,
): PipelineFigures {
  const byState: Record<string, number> = {};
  for (const [state, n] of Object.entries(summary?.byState ?? {})) if (typeof n === 'number' && n > 0) byState[state] = n;
  const count = (s: string) => byState[s] ?? 0;
  const oldest = (destinations ?? []).map((d) => d.oldestPendingAt).filter((x): x is string => Boolean(x)).sort()[0];
  return {
    byState,
    received: count('received'),
    committed: count('committed'),
    held: count('held'),
    deadLetter: count('dead-letter'),
    queueDepth: count('queued') + count('uploaded'),
    oldestQueuedAgeS: ageS(oldest, now),
    bytesOut: Math.max(0, bytesOut),
    lastError,
    diskAccepting,
  };
}

export async function collectTelemetry(src: TelemetrySources, seq: number, now = new Date()): Promise<Telemetry> {
  const [system, summary, destinations, bytesOut] = await Promise.all([
    bounded(() => src.system.read(), 10_000, EMPTY_SYSTEM),
    bounded<QueueSummary | null>(() => src.store.queueSummary(), 5000, null),
    bounded<DestinationSummary[] | null>(() => src.store.deliveries.summaries(), 5000, null),
    bounded(async () => (await src.metrics.uplinkBytes.get()).values.reduce((n, v) => n + v.value, 0), 1000, 0),
  ]);
  let daily: DailyFigures[] = [];
  try {
    daily = src.daily.figures(now);
  } catch {
    // never let bookkeeping stop the message
  }
  let lastError: string | null = null;
  try {
    lastError = src.lastError();
  } catch {
    // same
  }
  return {
    at: now.toISOString(),
    seq,
    firmware: src.firmware,
    uptimeS: Math.max(0, Math.round((now.getTime() - src.startedAt) / 1000)),
    system,
    pipeline: pipelineFigures(summary, destinations, bytesOut, lastError, src.disk.ok, now),
    daily,
  };
}
