import { describe, expect, it } from 'vitest';
import { watchdogSettings } from '../../../appliance/watchdog.ts';

describe('watchdogSettings', () => {
  it('pings four times per WATCHDOG_USEC when systemd watches this process', () => {
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '60000000' }, 42)).toEqual({ intervalMs: 15_000 });
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42)).toEqual({ intervalMs: 15_000 });
  });

  it('stays off without a socket, without a valid interval, or when the watchdog belongs to another PID', () => {
    expect(watchdogSettings({ WATCHDOG_USEC: '60000000' }, 42)).toBeUndefined();
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify' }, 42)).toBeUndefined();
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: 'soon' }, 42)).toBeUndefined();
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '0' }, 42)).toBeUndefined();
    expect(watchdogSettings({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '60000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
  });
});
