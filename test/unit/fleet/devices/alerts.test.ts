// Alert rules and health, one condition at a time, on hand-built device states.
import { describe, expect, it } from 'vitest';
import { AlertClock, deviceAlerts, healthOf } from '../../../../fleet/devices/alerts.ts';
import { HistoryRing } from '../../../../fleet/devices/history.ts';
import { newState, type DeviceState } from '../../../../fleet/devices/state.ts';
import { fleetConfig, identity, telemetry } from './fixtures.ts';

const NOW = Date.parse('2026-11-10T12:00:00.000Z');
const cfg = fleetConfig({ alertOfflineMinutes: 10, alertDiskPercent: 85, alertQueueAgeMinutes: 60 });

function state(over: Partial<DeviceState> = {}, certDays = 90): DeviceState {
  const s = newState({ ...identity('mb-aaaa1111', { certNotAfter: new Date(NOW + certDays * 86_400_000).toISOString() }), tags: [], revokedAt: null });
  return Object.assign(s, { online: true, statusAt: new Date(NOW - 3_600_000).toISOString(), lastSeenMs: NOW - 5_000, history: new HistoryRing() }, over);
}

const kinds = (s: DeviceState, clock = new AlertClock()) => deviceAlerts(s, cfg, NOW, clock).map((a) => `${a.kind}:${a.severity}`);

describe('device alerts', () => {
  it('a healthy online device has none and health ok', () => {
    const s = state({ telemetry: telemetry() });
    expect(kinds(s)).toEqual([]);
    expect(healthOf(s, [])).toBe('ok');
  });

  it('a device never heard from is unknown', () => {
    const s = state({ online: false, statusAt: null, lastSeenMs: 0 });
    expect(kinds(s)).toEqual([]);
    expect(healthOf(s, [])).toBe('unknown');
  });

  it('offline longer than the limit is critical; shorter is not an alert yet', () => {
    expect(kinds(state({ online: false, statusAt: new Date(NOW - 11 * 60_000).toISOString() }))).toEqual(['offline:critical']);
    expect(kinds(state({ online: false, statusAt: new Date(NOW - 9 * 60_000).toISOString() }))).toEqual([]);
    // Online but silent (no last will reached us) is a warning.
    expect(kinds(state({ lastSeenMs: NOW - 30 * 60_000 }))).toEqual(['offline:warning']);
  });

  it('disk, queue age, dead letters', () => {
    expect(kinds(state({ telemetry: telemetry({ disk: 86 }) }))).toEqual(['disk:warning']);
    expect(kinds(state({ telemetry: telemetry({ disk: 97 }) }))).toEqual(['disk:critical']);
    expect(kinds(state({ telemetry: telemetry({ disk: 50, diskAccepting: false }) }))).toEqual(['disk:critical']);
    expect(kinds(state({ telemetry: telemetry({ oldestQueuedAgeS: 3601 }) }))).toEqual(['queue-age:warning']);
    expect(kinds(state({ telemetry: telemetry({ oldestQueuedAgeS: 3599 }) }))).toEqual([]);
    expect(kinds(state({ telemetry: telemetry({ oldestQueuedAgeS: 5 * 3600 }) }))).toEqual(['queue-age:critical']);
    expect(kinds(state({ telemetry: telemetry({ deadLetter: 2 }) }))).toEqual(['dead-letters:warning']);
  });

  it('a rejected or failed config report', () => {
    const rep = { version: 3, steps: [], at: '2026-11-10T11:00:00.000Z', firmware: '0.1.0', effective: {} };
    const rejected = deviceAlerts(state({ reported: { ...rep, status: 'rejected', error: '/dicomPort: too big' } }), cfg, NOW, new AlertClock());
    expect(rejected).toEqual([{ deviceId: 'mb-aaaa1111', kind: 'config-rejected', severity: 'warning', message: 'config version 3 rejected: /dicomPort: too big', since: rep.at }]);
    expect(kinds(state({ reported: { ...rep, status: 'failed' } }))).toEqual(['config-rejected:critical']);
    expect(kinds(state({ reported: { ...rep, status: 'applied' } }))).toEqual([]);
  });

  it('certificate expiry within 14 days, critical within 3', () => {
    expect(kinds(state({}, 20))).toEqual([]);
    expect(kinds(state({}, 10))).toEqual(['cert-expiring:warning']);
    expect(kinds(state({}, 1))).toEqual(['cert-expiring:critical']);
    expect(kinds(state({}, -1))).toEqual(['cert-expiring:critical']);
  });

  it('health is the worst severity; revoked devices raise nothing', () => {
    const s = state({ telemetry: telemetry({ disk: 86, deadLetter: 1, oldestQueuedAgeS: 5 * 3600 }) });
    const alerts = deviceAlerts(s, cfg, NOW, new AlertClock());
    expect(alerts).toHaveLength(3);
    expect(healthOf(s, alerts)).toBe('critical');
    expect(healthOf(s, alerts.filter((a) => a.severity === 'warning'))).toBe('warning');
    const revoked = state({ telemetry: telemetry({ disk: 99 }) });
    revoked.identity.revokedAt = '2026-11-10T00:00:00.000Z';
    expect(kinds(revoked)).toEqual([]);
  });

  it('since stays while the condition lasts and resets once it cleared', () => {
    const clock = new AlertClock();
    const s = state({ telemetry: telemetry({ disk: 90 }) });
    const first = deviceAlerts(s, cfg, NOW, clock)[0]?.since;
    expect(deviceAlerts(s, cfg, NOW + 60_000, clock)[0]?.since).toBe(first);
    s.telemetry = telemetry({ disk: 10 });
    expect(deviceAlerts(s, cfg, NOW + 120_000, clock)).toEqual([]);
    s.telemetry = telemetry({ disk: 90 });
    expect(deviceAlerts(s, cfg, NOW + 180_000, clock)[0]?.since).toBe(new Date(NOW + 180_000).toISOString());
  });
});
