// The box under systemd's watchdog, with the real systemd-notify and a socket standing in for
// systemd: pings while it works, none while its check fails, READY/STOPPING around its life.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startWatchdog } from '../../../appliance/watchdog.ts';
import { createLogger } from '../../../shared/log.ts';
import { removeDir, spawnBox, type BoxProcess } from '../../helpers/box.ts';
import { listenNotifySocket, type NotifySocket } from '../../helpers/notify-socket.ts';
import { waitUntil } from '../../helpers/ports.ts';

let sock: NotifySocket | undefined;
let box: BoxProcess | undefined;
afterEach(async () => {
  await box?.kill();
  if (box) removeDir(box.dataDir);
  sock?.close();
  box = sock = undefined;
});

describe('systemd notify and watchdog', () => {
  it('a box under a unit without a watchdog still says READY, and never pings', async () => {
    sock = await listenNotifySocket();
    const s = sock;
    box = await spawnBox(mkdtempSync(join(tmpdir(), 'mbox-wd-')), [], { ...process.env, NOTIFY_SOCKET: s.path });
    await waitUntil(async () => s.with('READY').length === 1, 20_000, 'READY=1');
    await sleep(500);
    expect(s.with('WATCHDOG')).toHaveLength(0);
  });

  it('a running box announces READY, pings WATCHDOG=1 with its status, and says STOPPING on SIGTERM', async () => {
    sock = await listenNotifySocket();
    const s = sock;
    // 400 ms watchdog → a ping every 100 ms.
    box = await spawnBox(mkdtempSync(join(tmpdir(), 'mbox-wd-')), [], { ...process.env, NOTIFY_SOCKET: s.path, WATCHDOG_USEC: '400000' });
    await waitUntil(async () => s.with('WATCHDOG').length >= 5, 20_000, 'five watchdog pings');
    expect(s.with('READY')).toHaveLength(1);
    const ping = s.with('WATCHDOG').at(-1)!;
    expect(ping.fields.WATCHDOG).toBe('1');
    expect(ping.fields.STATUS).toMatch(new RegExp(`^DICOM MBOX on :${box.dicomPort}; no fleet$`));
    await box.kill('SIGTERM');
    await waitUntil(async () => s.with('STOPPING').length === 1, 10_000, 'STOPPING=1');
  });

  it('a box whose check fails stops pinging, so systemd restarts it; pings resume when it recovers', async () => {
    sock = await listenNotifySocket();
    process.env.NOTIFY_SOCKET = sock.path;
    let healthy = true;
    const wd = startWatchdog({
      settings: { watchdogIntervalMs: 100 },
      check: async () => {
        if (!healthy) throw new Error('store does not answer');
      },
      status: () => 'test',
      log: createLogger('silent'),
    });
    try {
      const s = sock;
      await waitUntil(async () => wd.pings >= 3 && s.with('WATCHDOG').length >= 3, 10_000, 'three pings');
      healthy = false;
      await sleep(250); // a ping already under way may still land
      const before = s.with('WATCHDOG').length;
      await sleep(800);
      expect(s.with('WATCHDOG').length).toBe(before);
      healthy = true;
      await waitUntil(async () => s.with('WATCHDOG').length >= before + 2, 10_000, 'pings after recovery');
    } finally {
      await wd.stop();
      delete process.env.NOTIFY_SOCKET;
    }
  });

  it('a check that hangs counts as failed', async () => {
    sock = await listenNotifySocket();
    process.env.NOTIFY_SOCKET = sock.path;
    const wd = startWatchdog({ settings: { watchdogIntervalMs: 100 }, check: () => new Promise(() => {}), status: () => 'wedged', log: createLogger('silent') });
    try {
      await sleep(1000);
      expect(wd.pings).toBe(0);
      expect(sock.with('WATCHDOG')).toHaveLength(0);
      expect(sock.with('READY')).toHaveLength(1);
    } finally {
      await wd.stop();
      delete process.env.NOTIFY_SOCKET;
    }
  });
});
