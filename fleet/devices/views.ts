// The API's view of a device (shared/fleet/api.ts bodies), built from registry state.
import type { Alert, DeviceDetail, DeviceSummary, TelemetryPoint } from '../../shared/fleet/api.ts';
import { healthOf } from './alerts.ts';
import type { DeviceState } from './state.ts';

export function summaryOf(s: Readonly<DeviceState>, alerts: readonly Alert[]): DeviceSummary {
  const id = s.identity;
  return {
    id: id.id,
    group: id.group,
    labels: id.labels,
    tags: id.tags,
    online: s.online,
    health: healthOf(s, alerts),
    revoked: Boolean(id.revokedAt),
    firmware: s.firmware,
    enrolledAt: id.enrolledAt,
    lastSeenAt: s.lastSeenMs ? new Date(s.lastSeenMs).toISOString() : null,
    certNotAfter: id.certNotAfter,
    alerts: alerts.length,
    desiredVersion: s.desired?.version ?? 0,
    reportedVersion: s.reported?.version ?? 0,
  };
}

export function detailOf(s: Readonly<DeviceState>, alerts: Alert[], history: TelemetryPoint[]): DeviceDetail {
  return {
    ...summaryOf(s, alerts),
    hostname: s.identity.hostname,
    certSerial: s.identity.certSerial,
    telemetry: s.telemetry,
    history,
    desired: s.desired,
    reported: s.reported,
    alertList: alerts,
    events: [...s.events].reverse(),
  };
}
