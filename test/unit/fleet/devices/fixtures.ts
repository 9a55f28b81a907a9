// Builders for device records and messages shared by the device and API tests.
import { Value } from '@sinclair/typebox/value';
import type { AuditLog, DeviceIdentityRecord, FleetBus } from '../../../../fleet/types.ts';
import type { AuditEntry } from '../../../../shared/fleet/api.ts';
import { FleetConfigSchema, type FleetConfig } from '../../../../shared/config/fleet.ts';
import type { DailyFigures, Telemetry } from '../../../../shared/fleet/messages.ts';

export function identity(id: string, over: Partial<DeviceIdentityRecord> = {}): Omit<DeviceIdentityRecord, 'tags' | 'revokedAt'> {
  return {
    id,
    group: 'radiology',
    labels: { clinic: 'north' },
    hostname: `${id}.lan`,
    firmware: '0.1.0',
    enrolledAt: '2026-11-01T10:00:00.000Z',
    enrolToken: 'abcdefghij',
    certSerial: '0A1B2C',
    certNotAfter: new Date(Date.now() + 90 * 86_400_000).toISOString(),
    ...over,
  };
}

export function daily(day: string, modality: string, over: Partial<DailyFigures> = {}): DailyFigures {
  return {
    day,
    modality,
    studies: 1,
    instances: 10,
    bytesReceived: 1000,
    bytesSent: 500,
    bytesFiltered: 0,
    uploadLatencyMs: { count: 10, sum: 1000, max: 200 },
    ...over,
  };
}

export function telemetry(over: { at?: string; seq?: number; disk?: number | null; queue?: number; oldestQueuedAgeS?: number | null; deadLetter?: number; daily?: DailyFigures[]; diskAccepting?: boolean } = {}): Telemetry {
  return {
    at: over.at ?? new Date().toISOString(),
    seq: over.seq ?? 1,
    firmware: '0.1.0',
    uptimeS: 100,
    system: {
      cpuLoadPercent: 12.5,
      memUsedBytes: 512,
      memTotalBytes: 1024,
      diskUsedBytes: 40,
      diskTotalBytes: 100,
      diskUsedPercent: over.disk === undefined ? 40 : over.disk,
      osUptimeS: 1000,
      netRxBytesPerSec: null,
      netTxBytesPerSec: null,
      cpuTempC: null,
    },
    pipeline: {
      byState: { committed: 5 },
      received: 5,
      committed: 5,
      held: 0,
      deadLetter: over.deadLetter ?? 0,
      queueDepth: over.queue ?? 0,
      oldestQueuedAgeS: over.oldestQueuedAgeS === undefined ? null : over.oldestQueuedAgeS,
      bytesOut: 0,
      lastError: null,
      diskAccepting: over.diskAccepting ?? true,
    },
    daily: over.daily ?? [],
  };
}

/** A FleetConfig with every default filled in. */
export function fleetConfig(over: Partial<FleetConfig> = {}): FleetConfig {
  return { ...(Value.Default(FleetConfigSchema, { dataDir: '/nonexistent' }) as FleetConfig), ...over };
}

type Kind = 'status' | 'telemetry' | 'config/reported' | 'commands/res';

/** FleetBus stand-in for unit tests: records publishes and lets the test deliver device messages. */
export class FakeBus implements FleetBus {
  readonly published: Array<{ topic: string; payload: unknown; opts: { retain?: boolean; qos?: 0 | 1 } | undefined }> = [];
  private handler: ((id: string, kind: Kind, payload: unknown) => void) | undefined;
  failPublish = false;
  connected = true;

  async publish(topic: string, payload: unknown, opts?: { retain?: boolean; qos?: 0 | 1 }): Promise<void> {
    if (this.failPublish) throw new Error('broker gone');
    this.published.push({ topic, payload, opts });
  }

  onDeviceMessage(handler: (id: string, kind: Kind, payload: unknown) => void): void {
    this.handler = handler;
  }

  deliver(id: string, kind: Kind, payload: unknown): void {
    this.handler?.(id, kind, payload);
  }

  async close(): Promise<void> {}
}

/** AuditLog in memory. */
export class MemoryAudit implements AuditLog {
  readonly entries: AuditEntry[] = [];
  async record(entry: Omit<AuditEntry, 'at'>): Promise<void> {
    this.entries.push({ at: new Date().toISOString(), ...entry });
  }
  async list(opts: { limit: number; action?: string; target?: string; before?: string }): Promise<AuditEntry[]> {
    return [...this.entries]
      .reverse()
      .filter((e) => (!opts.action || e.action.startsWith(opts.action)) && (!opts.target || e.target === opts.target) && (!opts.before || e.at < opts.before))
      .slice(0, opts.limit);
  }
}
