// What the fleet knows about one device, held in memory for the whole fleet (reads never touch
// LevelDB) and persisted by the registry.
import type { DeviceIdentityRecord } from '../types.ts';
import type { DesiredConfig, ReportedConfig, Telemetry } from '../../shared/fleet/messages.ts';
import type { HistoryRing } from './history.ts';

export interface DeviceEvent {
  at: string;
  event: 'enrolled' | 'renewed' | 'online' | 'offline' | 'config-desired' | 'config-applied' | 'config-rejected' | 'config-failed' | 'command' | 'revoked' | 'updated' | 'update';
  detail?: string;
}

/** Events kept per device, newest last. */
export const MAX_EVENTS = 50;

/** The status row as stored (lastSeenAt is written at most every TELEMETRY_PERSIST_MS). */
export interface PersistedStatus {
  online: boolean;
  /** When the device last went online or offline. */
  statusAt: string | null;
  reason: string | null;
  lastSeenAt: string | null;
  firmware: string | null;
}

export interface DeviceState {
  identity: DeviceIdentityRecord;
  online: boolean;
  statusAt: string | null;
  reason: string | null;
  /** Epoch ms of the last message of any kind; 0 when never seen. */
  lastSeenMs: number;
  firmware: string | null;
  telemetry: Telemetry | null;
  /** Epoch ms the latest telemetry arrived / was queued for persistence. */
  telemetryMs: number;
  persistedMs: number;
  /** Epoch ms the history ring was last queued for persistence. */
  historyPersistedMs: number;
  history: HistoryRing | null;
  desired: DesiredConfig | null;
  reported: ReportedConfig | null;
  events: DeviceEvent[];
}

export interface DeviceFilter {
  group?: string;
  tag?: string;
  online?: boolean;
  /** Case-insensitive substring of id, hostname, group, a label value or a tag. */
  q?: string;
}

export function newState(identity: DeviceIdentityRecord): DeviceState {
  return {
    identity,
    online: false,
    statusAt: null,
    reason: null,
    lastSeenMs: 0,
    firmware: identity.firmware,
    telemetry: null,
    telemetryMs: 0,
    persistedMs: 0,
    historyPersistedMs: 0,
    history: null,
    desired: null,
    reported: null,
    events: [],
  };
}

export function matches(s: DeviceState, f: DeviceFilter): boolean {
  const id = s.identity;
  if (f.group !== undefined && id.group !== f.group) return false;
  if (f.tag !== undefined && !id.tags.includes(f.tag)) return false;
  if (f.online !== undefined && s.online !== f.online) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    const fields = [id.id, id.hostname ?? '', id.group, ...Object.values(id.labels), ...id.tags];
    if (!fields.some((v) => v.toLowerCase().includes(q))) return false;
  }
  return true;
}

/** Certificate serials compare as numbers: case, colons and leading zeros differ between tools. */
export function normalSerial(serial: string): string {
  return serial.toLowerCase().replace(/[^0-9a-f]/g, '').replace(/^0+/, '');
}

export const clinicOf = (identity: DeviceIdentityRecord): string => identity.labels['clinic'] ?? identity.group;
