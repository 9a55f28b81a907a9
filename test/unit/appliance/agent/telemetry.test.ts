import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { DailyBook } from '../../../../appliance/agent/daily.ts';
import { createSystemProbe, mountOf, type SystemInfoSource } from '../../../../appliance/agent/system.ts';
import { collectTelemetry, pipelineFigures, type TelemetrySources } from '../../../../appliance/agent/telemetry.ts';
import { Telemetry } from '../../../../shared/fleet/messages.ts';

const checkTelemetry = new Ajv({ strict: false, allErrors: true }).compile(Telemetry);
const never = () => new Promise<never>(() => undefined);
const boom = () => Promise.reject(new Error('no such sensor'));

const ALL_NULL = {
  cpuLoadPercent: null,
  memUsedBytes: null,
  memTotalBytes: null,
  diskUsedBytes: null,
  diskTotalBytes: null,
  diskUsedPercent: null,
  osUptimeS: null,
  netRxBytesPerSec: null,
  netTxBytesPerSec: null,
  cpuTempC: null,
};

describe('system probe', () => {
  it('turns every failing, hanging or empty call into null', async () => {
    const source: SystemInfoSource = {
      currentLoad: boom,
      mem: never,
      fsSize: async () => [],
      networkStats: async () => [{ rx_sec: null, tx_sec: null }],
      cpuTemperature: async () => ({ main: null }),
      time: () => {
        throw new Error('no clock');
      },
    };
    const started = Date.now();
    expect(await createSystemProbe('/data', source, 50).read()).toEqual(ALL_NULL);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('survives values of the wrong shape', async () => {
    const odd = { currentLoad: async () => null, mem: async () => 'x', fsSize: async () => 'x', networkStats: async () => ({}), cpuTemperature: async () => undefined, time: () => ({ uptime: 'NaN' }) };
    expect(await createSystemProbe('/data', odd as unknown as SystemInfoSource, 50).read()).toEqual(ALL_NULL);
  });

  it('reads the figures of the filesystem that holds the data directory', async () => {
    const source: SystemInfoSource = {
      currentLoad: async () => ({ currentLoad: 12.345 }),
      mem: async () => ({ total: 1000, active: 300, used: 900 }),
      fsSize: async () => [
        { mount: '/', size: 100, used: 10, use: 10 },
        { mount: '/data', size: 500, used: 250, use: 50 },
        { mount: '/dat', size: 1, used: 1, use: 100 },
      ],
      networkStats: async () => [{ rx_sec: 10, tx_sec: 5 }],
      cpuTemperature: async () => ({ main: 48 }),
      time: () => ({ uptime: 3600 }),
    };
    expect(await createSystemProbe('/data/mbox', source, 50).read()).toEqual({
      cpuLoadPercent: 12.3,
      memUsedBytes: 300,
      memTotalBytes: 1000,
      diskUsedBytes: 250,
      diskTotalBytes: 500,
      diskUsedPercent: 50,
      osUptimeS: 3600,
      netRxBytesPerSec: 10,
      netTxBytesPerSec: 5,
      cpuTempC: 48,
    });
  });

  it('picks the longest mount that contains the directory', () => {
    const list = [{ mount: '/' }, { mount: '/var' }, { mount: '/var/lib/mbox' }, { mount: '/var/li' }];
    expect(mountOf(list, '/var/lib/mbox/data')?.mount).toBe('/var/lib/mbox');
    expect(mountOf(list, '/var/lib/other')?.mount).toBe('/var');
    expect(mountOf(list, '/home')?.mount).toBe('/');
  });

  it('works against the real systeminformation on this machine', async () => {
    const probe = createSystemProbe(process.cwd());
    await probe.warm();
    const f = await probe.read();
    expect(f.memTotalBytes).toBeGreaterThan(0);
    expect(f.diskTotalBytes).toBeGreaterThan(0);
    expect(Object.keys(f).sort()).toEqual(Object.keys(ALL_NULL).sort());
  });
});

function sources(over: Partial<TelemetrySources> = {}): TelemetrySources {
  const daily = new DailyBook();
  return {
    store: {
      queueSummary: async () => ({ byState: { received: 2, queued: 3, uploaded: 1, committed: 10, held: 1, 'dead-letter': 1 }, pendingBytes: 5 }),
      deliveries: { summaries: async () => [{ destination: 'a', pending: 4, pendingBytes: 1, committed: 1, committedBytes: 1, deadLetter: 0, oldestPendingAt: new Date(Date.now() - 60_000).toISOString() }] },
    } as unknown as TelemetrySources['store'],
    disk: { ok: true },
    metrics: { uplinkBytes: { get: async () => ({ values: [{ value: 100 }, { value: 23 }] }) } } as unknown as TelemetrySources['metrics'],
    system: { warm: async () => undefined, read: async () => ALL_NULL },
    daily,
    lastError: () => 'destination a: HTTP 503',
    firmware: '0.1.0',
    startedAt: Date.now() - 5000,
    ...over,
  };
}

describe('telemetry', () => {
  it('builds a schema-valid message from the pipeline and host figures', async () => {
    const t = await collectTelemetry(sources(), 7);
    expect(checkTelemetry(t), JSON.stringify(checkTelemetry.errors)).toBe(true);
    expect(t).toMatchObject({ seq: 7, firmware: '0.1.0', uptimeS: 5 });
    expect(t.pipeline).toMatchObject({ received: 2, committed: 10, held: 1, deadLetter: 1, queueDepth: 4, bytesOut: 123, lastError: 'destination a: HTTP 503', diskAccepting: true });
    expect(t.pipeline.oldestQueuedAgeS).toBeGreaterThanOrEqual(59);
  });

  it('is still schema-valid when every source fails', async () => {
    const t = await collectTelemetry(
      sources({
        store: { queueSummary: boom, deliveries: { summaries: boom } } as unknown as TelemetrySources['store'],
        metrics: { uplinkBytes: { get: boom } } as unknown as TelemetrySources['metrics'],
        system: { warm: boom, read: boom },
        daily: { figures: () => { throw new Error('x'); } } as unknown as DailyBook,
        lastError: () => {
          throw new Error('x');
        },
      }),
      0,
    );
    expect(checkTelemetry(t), JSON.stringify(checkTelemetry.errors)).toBe(true);
    expect(t.system).toEqual(ALL_NULL);
    expect(t.pipeline).toMatchObject({ byState: {}, queueDepth: 0, bytesOut: 0, lastError: null, oldestQueuedAgeS: null });
    expect(t.daily).toEqual([]);
  });

  it('counts only positive states', () => {
    const p = pipelineFigures({ byState: { received: 0, queued: 2 }, pendingBytes: 0 }, [], 0, null, false, new Date());
    expect(p).toEqual({ byState: { queued: 2 }, received: 0, committed: 0, held: 0, deadLetter: 0, queueDepth: 2, oldestQueuedAgeS: null, bytesOut: 0, lastError: null, diskAccepting: false });
  });
});
