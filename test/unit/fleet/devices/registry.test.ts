// The device registry on a real LevelDB: what survives a reopen, revocation, desired versions,
// bounded history and events, and the command log's bound.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_COMMANDS } from '../../../../fleet/devices/command-log.ts';
import { HISTORY_POINTS } from '../../../../fleet/devices/history.ts';
import { DeviceRegistry, UnknownDeviceError } from '../../../../fleet/devices/registry.ts';
import { MAX_EVENTS } from '../../../../fleet/devices/state.ts';
import { createLogger } from '../../../../shared/log.ts';
import { daily, identity, telemetry } from './fixtures.ts';

const log = createLogger('silent');
let dir: string;
let reg: DeviceRegistry;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-registry-'));
  reg = await DeviceRegistry.open(dir, log);
});

afterEach(async () => {
  await reg.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function reopen(): Promise<DeviceRegistry> {
  await reg.close();
  reg = await DeviceRegistry.open(dir, log);
  return reg;
}

describe('DeviceRegistry', () => {
  it('keeps identities, revocation and the current serial across a reopen', async () => {
    await reg.register(identity('mb-aaaa1111'));
    await reg.register(identity('mb-bbbb2222', { certSerial: '01ff' }));
    expect(reg.isCurrentSerial('mb-aaaa1111', '0a:1b:2c')).toBe(true);
    expect(await reg.revoke('mb-bbbb2222', 'admin')).toBe(true);
    expect(await reg.revoke('mb-bbbb2222', 'admin')).toBe(false);
    await reg.renewed('mb-aaaa1111', '0BEEF', '2027-01-01T00:00:00.000Z');
    await reopen();
    expect(reg.size).toBe(2);
    expect(reg.isRevoked('mb-bbbb2222')).toBe(true);
    expect(reg.isRevoked('mb-aaaa1111')).toBe(false);
    expect(reg.isRevoked('mb-unknown00')).toBe(false);
    expect(reg.isCurrentSerial('mb-aaaa1111', '0a1b2c')).toBe(false);
    expect(reg.isCurrentSerial('mb-aaaa1111', 'beef')).toBe(true);
    expect(reg.isCurrentSerial('mb-unknown00', 'beef')).toBe(false);
    expect(reg.getIdentity('mb-aaaa1111')?.certNotAfter).toBe('2027-01-01T00:00:00.000Z');
    expect(reg.get('mb-aaaa1111')?.events.map((e) => e.event)).toEqual(['enrolled', 'renewed']);
  });

  it('numbers desired configs per device and keeps them', async () => {
    await reg.register(identity('mb-aaaa1111'));
    await reg.register(identity('mb-bbbb2222'));
    expect((await reg.setDesired('mb-aaaa1111', { logLevel: 'debug' }, 'ops')).version).toBe(1);
    expect((await reg.setDesired('mb-aaaa1111', { logLevel: 'info' }, 'ops')).version).toBe(2);
    expect((await reg.setDesired('mb-bbbb2222', {}, 'ops')).version).toBe(1);
    await reopen();
    expect(reg.get('mb-aaaa1111')?.desired).toMatchObject({ version: 2, config: { logLevel: 'info' }, issuedBy: 'ops' });
    expect((await reg.setDesired('mb-aaaa1111', {}, 'ops')).version).toBe(3);
    await expect(reg.setDesired('mb-nope0000', {}, 'ops')).rejects.toBeInstanceOf(UnknownDeviceError);
  });

  it('updates group, tags and labels', async () => {
    await reg.register(identity('mb-aaaa1111'));
    await reg.update('mb-aaaa1111', { group: 'ct', tags: ['a', 'b', 'a'], labels: { clinic: 'south' } });
    await reopen();
    expect(reg.getIdentity('mb-aaaa1111')).toMatchObject({ group: 'ct', tags: ['a', 'b'], labels: { clinic: 'south' } });
    expect(reg.list({ tag: 'b' }).map((s) => s.identity.id)).toEqual(['mb-aaaa1111']);
    expect(reg.list({ group: 'radiology' })).toHaveLength(0);
    expect(reg.list({ q: 'SOUTH' })).toHaveLength(1);
    expect(reg.list({ online: true })).toHaveLength(0);
  });

  it('bounds telemetry history to the ring and restores it in order after a reopen', async () => {
    await reg.register(identity('mb-aaaa1111'));
    const t0 = Date.parse('2026-11-10T00:00:00.000Z');
    const n = HISTORY_POINTS + 60;
    for (let i = 0; i < n; i++) {
      reg.recordTelemetry('mb-aaaa1111', telemetry({ at: new Date(t0 + i * 10_000).toISOString(), seq: i, queue: i }), t0 + i * 10_000);
    }
    let points = reg.history('mb-aaaa1111');
    expect(points).toHaveLength(HISTORY_POINTS);
    expect(points[0]?.queue).toBe(60);
    expect(points.at(-1)?.queue).toBe(n - 1);
    expect(points[0]).toMatchObject({ cpu: 12.5, mem: 50, disk: 40, oldestQueuedAgeS: null });
    await reopen();
    points = reg.history('mb-aaaa1111');
    expect(points).toHaveLength(HISTORY_POINTS);
    expect(points.map((p) => p.queue)).toEqual(Array.from({ length: HISTORY_POINTS }, (_, i) => 60 + i));
    expect(reg.get('mb-aaaa1111')?.telemetry?.seq).toBe(n - 1);
    expect(reg.get('mb-aaaa1111')?.lastSeenMs).toBe(t0 + (n - 1) * 10_000);
    // Writing continues after the newest point.
    reg.recordTelemetry('mb-aaaa1111', telemetry({ at: new Date(t0 + n * 10_000).toISOString(), queue: 9999 }), t0 + n * 10_000);
    points = reg.history('mb-aaaa1111');
    expect(points.at(-1)?.queue).toBe(9999);
    expect(points[0]?.queue).toBe(61);
  });

  it('applies status changes in order and bounds the event list', async () => {
    await reg.register(identity('mb-aaaa1111'));
    expect(reg.setStatus('mb-aaaa1111', { online: true, at: '2026-11-10T10:00:00.000Z', reason: 'connected' }, Date.parse('2026-11-10T10:00:01.000Z'))).toBe(true);
    expect(reg.setStatus('mb-aaaa1111', { online: true, at: '2026-11-10T10:00:05.000Z' })).toBe(false);
    // A last will carries its connect time, older than the online it follows: it still counts, and
    // the offline time is when it arrived.
    expect(reg.setStatus('mb-aaaa1111', { online: false, at: '2026-11-10T09:59:59.000Z', reason: 'connection-lost' }, Date.parse('2026-11-10T11:00:00.000Z'))).toBe(true);
    expect(reg.get('mb-aaaa1111')).toMatchObject({ online: false, statusAt: '2026-11-10T11:00:00.000Z', reason: 'connection-lost' });
    for (let i = 0; i < MAX_EVENTS + 10; i++) {
      reg.setStatus('mb-aaaa1111', { online: i % 2 === 0 ? false : true, at: new Date(Date.parse('2026-11-10T11:00:00.000Z') + i * 1000).toISOString() });
    }
    expect(reg.get('mb-aaaa1111')?.events).toHaveLength(MAX_EVENTS);
    const online = reg.get('mb-aaaa1111')?.online;
    await reopen();
    expect(reg.get('mb-aaaa1111')?.events).toHaveLength(MAX_EVENTS);
    expect(reg.get('mb-aaaa1111')?.online).toBe(online);
  });

  it('keeps the reported config', async () => {
    await reg.register(identity('mb-aaaa1111'));
    reg.setReported('mb-aaaa1111', { version: 2, status: 'rejected', error: '/x: bad', steps: [], at: '2026-11-10T10:00:00.000Z', firmware: '0.1.0', effective: {} });
    await reopen();
    expect(reg.get('mb-aaaa1111')?.reported).toMatchObject({ version: 2, status: 'rejected' });
  });

  it('sums daily figures over devices by day, modality and clinic, replacing each device’s previous numbers', async () => {
    const now = Date.parse('2026-11-10T12:00:00.000Z');
    await reg.register(identity('mb-aaaa1111', { labels: { clinic: 'north' } }));
    await reg.register(identity('mb-bbbb2222', { labels: { clinic: 'north' } }));
    await reg.register(identity('mb-cccc3333', { labels: {}, group: 'mobile' }));
    reg.recordTelemetry('mb-aaaa1111', telemetry({ daily: [daily('2026-11-10', 'CT'), daily('2026-11-09', 'MR', { studies: 3 })] }), now);
    // The same device reports again with grown numbers: replaces, not adds.
    reg.recordTelemetry('mb-aaaa1111', telemetry({ daily: [daily('2026-11-10', 'CT', { studies: 2, instances: 20, uploadLatencyMs: { count: 20, sum: 3000, max: 400 } })] }), now);
    reg.recordTelemetry('mb-bbbb2222', telemetry({ daily: [daily('2026-11-10', 'CT', { studies: 5 })] }), now);
    reg.recordTelemetry('mb-cccc3333', telemetry({ daily: [daily('2026-11-10', 'CT')] }), now);
    // Too old to change any more.
    reg.recordTelemetry('mb-cccc3333', telemetry({ daily: [daily('2026-10-01', 'CT')] }), now);
    const check = (r: DeviceRegistry): void => {
      const rows = r.stats(14, now);
      expect(rows).toHaveLength(3);
      const north = rows.find((x) => x.day === '2026-11-10' && x.clinic === 'north' && x.modality === 'CT');
      expect(north).toMatchObject({ studies: 7, instances: 30, bytesReceived: 2000, uploadLatencyMsAvg: 4000 / 30, uploadLatencyMsMax: 400 });
      expect(rows.find((x) => x.clinic === 'mobile')).toMatchObject({ studies: 1 });
      expect(rows.find((x) => x.day === '2026-11-09')).toMatchObject({ modality: 'MR', studies: 3 });
      expect(r.stats(1, now).every((x) => x.day === '2026-11-10')).toBe(true);
    };
    check(reg);
    await reopen();
    check(reg);
  });

  it('keeps the last commands per device', async () => {
    await reg.register(identity('mb-aaaa1111'));
    for (let i = 0; i < MAX_COMMANDS + 5; i++) {
      const issuedAt = new Date(Date.parse('2026-11-10T00:00:00.000Z') + i * 1000).toISOString();
      await reg.commands.save(
        { id: `cmd-${String(i).padStart(5, '0')}`, deviceId: 'mb-aaaa1111', name: 'ping', args: {}, status: i === MAX_COMMANDS + 4 ? 'pending' : 'ok', issuedBy: 't', issuedAt, expiresAt: issuedAt },
        true,
      );
    }
    const list = await reg.commands.list('mb-aaaa1111');
    expect(list).toHaveLength(MAX_COMMANDS);
    expect(list[0]?.id).toBe(`cmd-${String(MAX_COMMANDS + 4).padStart(5, '0')}`);
    expect(await reg.commands.get('cmd-00000')).toBeUndefined();
    expect((await reg.commands.pending()).map((r) => r.id)).toEqual([`cmd-${String(MAX_COMMANDS + 4).padStart(5, '0')}`]);
  });
});
