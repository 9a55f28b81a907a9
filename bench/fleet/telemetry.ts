// A simulated box's telemetry: the shape and size of what appliance/agent/telemetry.ts sends (host
// figures, the pipeline by state, today's and yesterday's rows), with figures that drift a little
// from message to message so the fleet's history and daily sums do real work.
import type { DailyFigures, Telemetry } from '../../shared/fleet/messages.ts';

const GIB = 1024 ** 3;
const MODALITIES = ['CT', 'MR', 'CR', 'US', 'DX'] as const;

export interface BoxFigures {
  seq: number;
  startedAt: number;
  modality: string;
  studiesToday: number;
  instancesToday: number;
  committed: number;
  bytesOut: number;
}

/** Per-box starting point, derived from its index so runs are comparable. */
export function initialFigures(index: number, now = Date.now()): BoxFigures {
  return {
    seq: 0,
    startedAt: now - (index % 7200) * 1000,
    modality: MODALITIES[index % MODALITIES.length]!,
    studiesToday: index % 40,
    instancesToday: (index % 40) * 180,
    committed: 10_000 + (index % 5000),
    bytesOut: 5e9 + index * 1e5,
  };
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

function dailyRow(dayStr: string, modality: string, studies: number, instances: number): DailyFigures {
  const bytesReceived = instances * 520_000;
  return {
    day: dayStr,
    modality,
    studies,
    instances,
    bytesReceived,
    bytesSent: Math.round(bytesReceived * 0.41),
    bytesFiltered: Math.round(bytesReceived * 0.02),
    uploadLatencyMs: { count: studies, sum: studies * 14_500, max: studies ? 61_000 : 0 },
  };
}

/** The next message for this box; `at` is stamped now, right before it is published. */
export function nextTelemetry(f: BoxFigures, firmware: string, nowMs = Date.now()): Telemetry {
  f.seq++;
  // Roughly one new study every few minutes per box.
  if (Math.random() < 0.05) {
    f.studiesToday++;
    f.instancesToday += 180;
    f.committed += 180;
    f.bytesOut += 180 * 210_000;
  }
  const queueDepth = Math.floor(Math.random() * 30);
  const cpu = 5 + Math.random() * 40;
  return {
    at: new Date(nowMs).toISOString(),
    seq: f.seq,
    firmware,
    uptimeS: Math.round((nowMs - f.startedAt) / 1000),
    system: {
      cpuLoadPercent: Math.round(cpu * 10) / 10,
      memUsedBytes: Math.round((1.1 + Math.random() * 0.4) * GIB),
      memTotalBytes: 4 * GIB,
      diskUsedBytes: Math.round(120 * GIB + f.committed * 1000),
      diskTotalBytes: 468 * GIB,
      diskUsedPercent: Math.round(((120 * GIB + f.committed * 1000) / (468 * GIB)) * 1000) / 10,
      osUptimeS: Math.round((nowMs - f.startedAt) / 1000) + 3600,
      netRxBytesPerSec: Math.round(Math.random() * 2e6),
      netTxBytesPerSec: Math.round(Math.random() * 1.5e6),
      cpuTempC: null,
    },
    pipeline: {
      byState: { committed: f.committed, queued: queueDepth, uploaded: 0, held: 2, 'dead-letter': 0 },
      received: 0,
      committed: f.committed,
      held: 2,
      deadLetter: 0,
      queueDepth,
      oldestQueuedAgeS: queueDepth ? Math.round(Math.random() * 90) : null,
      bytesOut: f.bytesOut,
      lastError: null,
      diskAccepting: true,
    },
    daily: [
      dailyRow(day(nowMs - 86_400_000), f.modality, 37, 37 * 180),
      dailyRow(day(nowMs), f.modality, f.studiesToday, f.instancesToday),
    ],
  };
}
