import { describe, expect, it } from 'vitest';
import { notifySettings } from '../../../appliance/watchdog.ts';

const SOCK = { NOTIFY_SOCKET: '/run/systemd/notify' };

describe('notifySettings', () => {
  it('pings four times per WATCHDOG_USEC when systemd watches this process', () => {
    expect(notifySettings({ ...SOCK, WATCHDOG_USEC: '60000000' }, 42)).toEqual({ watchdogIntervalMs: 15_000 });
    expect(notifySettings({ ...SOCK, WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42)).toEqual({ watchdogIntervalMs: 15_000 });
  });

  it('still says READY (no watchdog) when systemd listens but watches nothing, or watches another PID', () => {
    expect(notifySettings(SOCK, 42)).toEqual({ watchdogIntervalMs: null });
    expect(notifySettings({ ...SOCK, WATCHDOG_USEC: 'soon' }, 42)).toEqual({ watchdogIntervalMs: null });
    expect(notifySettings({ ...SOCK, WATCHDOG_USEC: '0' }, 42)).toEqual({ watchdogIntervalMs: null });
    expect(notifySettings({ ...SOCK, WATCHDOG_USEC: '60000000', WATCHDOG_PID: '7' }, 42)).toEqual({ watchdogIntervalMs: null });
  });

  it('is off outside systemd', () => {
    expect(notifySettings({ WATCHDOG_USEC: '60000000' }, 42)).toBeUndefined();
  });
});
