// Alerts are derived, never stored: each read (and the service's timer) computes them from the
// device's state and the fleet config. Only the time an alert was first seen is remembered, so
// `since` stays put while the condition lasts.
import type { Alert, Health } from '../../shared/fleet/api.ts';
import type { FleetConfig } from '../../shared/config/fleet.ts';
import type { DeviceState } from './state.ts';

export type AlertKind = Alert['kind'];
export type Thresholds = Pick<FleetConfig, 'alertOfflineMinutes' | 'alertDiskPercent' | 'alertQueueAgeMinutes'>;

/** A certificate this close to its end gets a warning; within CERT_CRITICAL_DAYS a critical alert. */
export const CERT_WARNING_DAYS = 14;
export const CERT_CRITICAL_DAYS = 3;
const DAY_MS = 86_400_000;

/** First-seen times per device and kind, forgotten when the condition clears. */
export class AlertClock {
  private readonly first = new Map<string, string>();

  since(deviceId: string, kind: AlertKind, nowMs: number): string {
    const key = `${deviceId}\0${kind}`;
    let at = this.first.get(key);
    if (!at) this.first.set(key, (at = new Date(nowMs).toISOString()));
    return at;
  }

  /** Drops the kinds the device no longer has. */
  settle(deviceId: string, active: readonly Alert[]): void {
    for (const kind of ['offline', 'disk', 'queue-age', 'dead-letters', 'config-rejected', 'cert-expiring'] as const) {
      if (!active.some((a) => a.kind === kind)) this.first.delete(`${deviceId}\0${kind}`);
    }
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const minutes = (ms: number): string => `${Math.round(ms / 60_000)} min`;

export function deviceAlerts(s: Readonly<DeviceState>, t: Thresholds, nowMs: number, clock: AlertClock): Alert[] {
  const id = s.identity.id;
  if (s.identity.revokedAt) return [];
  const out: Alert[] = [];
  const add = (kind: AlertKind, severity: Alert['severity'], message: string, since?: string): void => {
    out.push({ deviceId: id, kind, severity, message, since: since ?? clock.since(id, kind, nowMs) });
  };
  const offlineMs = t.alertOfflineMinutes * 60_000;
  if (!s.online && s.statusAt) {
    const since = Date.parse(s.statusAt);
    if (nowMs - since > offlineMs) add('offline', 'critical', `offline for ${minutes(nowMs - since)}${s.reason ? ` (${s.reason})` : ''}`, s.statusAt);
  } else if (s.online && s.lastSeenMs > 0 && nowMs - s.lastSeenMs > Math.max(offlineMs, 60_000)) {
    // Marked online but silent: its broker connection may be gone without a last will (fleet restart).
    add('offline', 'warning', `no message for ${minutes(nowMs - s.lastSeenMs)}`, iso(s.lastSeenMs));
  }
  const tel = s.telemetry;
  if (tel) {
    const disk = tel.system.diskUsedPercent;
    if (!tel.pipeline.diskAccepting) add('disk', 'critical', `disk ${disk === null ? '' : `${disk.toFixed(1)}% `}full: the box refuses new studies`);
    else if (disk !== null && disk > t.alertDiskPercent) add('disk', disk >= 95 ? 'critical' : 'warning', `disk ${disk.toFixed(1)}% used (alert above ${t.alertDiskPercent}%)`);
    const age = tel.pipeline.oldestQueuedAgeS;
    const limitS = t.alertQueueAgeMinutes * 60;
    if (age !== null && age > limitS) {
      add('queue-age', age > 4 * limitS ? 'critical' : 'warning', `oldest queued upload waits ${minutes(age * 1000)} (${tel.pipeline.queueDepth} queued)`);
    }
    if (tel.pipeline.deadLetter > 0) add('dead-letters', 'warning', `${tel.pipeline.deadLetter} instance(s) dead-lettered${tel.pipeline.lastError ? `: ${tel.pipeline.lastError}` : ''}`);
  }
  const rep = s.reported;
  if (rep && (rep.status === 'rejected' || rep.status === 'failed')) {
    add('config-rejected', rep.status === 'failed' ? 'critical' : 'warning', `config version ${rep.version} ${rep.status}${rep.error ? `: ${rep.error}` : ''}`, rep.at);
  }
  const notAfter = Date.parse(s.identity.certNotAfter);
  if (Number.isFinite(notAfter) && notAfter - nowMs < CERT_WARNING_DAYS * DAY_MS) {
    const left = notAfter - nowMs;
    add('cert-expiring', left < CERT_CRITICAL_DAYS * DAY_MS ? 'critical' : 'warning', left <= 0 ? `certificate expired ${s.identity.certNotAfter}` : `certificate expires ${s.identity.certNotAfter}`);
  }
  clock.settle(id, out);
  return out;
}

/** Worst alert severity; unknown for a device never heard from (or revoked). */
export function healthOf(s: Readonly<DeviceState>, alerts: readonly Alert[]): Health {
  if (alerts.some((a) => a.severity === 'critical')) return 'critical';
  if (alerts.some((a) => a.severity === 'warning')) return 'warning';
  if (s.identity.revokedAt || (s.lastSeenMs === 0 && s.statusAt === null)) return 'unknown';
  return 'ok';
}
