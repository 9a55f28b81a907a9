// Host figures for telemetry from systeminformation. Every call may be slow, fail or come back
// empty on some hardware (VMs have no temperatures): each is bounded by a timeout and any failure
// becomes null, so telemetry never stalls or breaks on one missing figure.
import { realpathSync } from 'node:fs';
import si from 'systeminformation';
import type { SystemFigures } from '../../shared/fleet/messages.ts';

/** The part of systeminformation we use (a fake stands in for it in unit tests). */
export interface SystemInfoSource {
  currentLoad(): Promise<{ currentLoad?: number | null }>;
  mem(): Promise<{ total?: number | null; active?: number | null; used?: number | null }>;
  fsSize(): Promise<Array<{ mount?: string; size?: number | null; used?: number | null; use?: number | null }>>;
  networkStats(): Promise<Array<{ rx_sec?: number | null; tx_sec?: number | null }>>;
  cpuTemperature(): Promise<{ main?: number | null }>;
  time(): { uptime?: number | string | null };
}

export interface SystemProbe {
  /** First calls of currentLoad and networkStats are slow and return no rates: make them early. */
  warm(): Promise<void>;
  read(): Promise<SystemFigures>;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null);

/** Resolves to `fallback` if `fn` throws, rejects or takes longer than `ms`. */
export async function bounded<T>(fn: () => Promise<T> | T, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(fn),
      new Promise<T>((resolve) => {
        timer = setTimeout(() => resolve(fallback), ms);
        timer.unref();
      }),
    ]);
  } catch {
    return fallback;
  } finally {
    clearTimeout(timer);
  }
}

/** The mount whose path is the longest prefix of `dir`: the filesystem that holds it. */
export function mountOf<T extends { mount?: string }>(list: T[], dir: string): T | undefined {
  let best: T | undefined;
  for (const fs of list) {
    const m = fs.mount;
    if (!m) continue;
    const prefix = m.endsWith('/') ? m : `${m}/`;
    if ((dir === m || dir.startsWith(prefix) || m === '/') && (!best || m.length > (best.mount ?? '').length)) best = fs;
  }
  return best;
}

export function createSystemProbe(dataDir: string, source: SystemInfoSource = si as unknown as SystemInfoSource, timeoutMs = 3000): SystemProbe {
  let dir = dataDir;
  try {
    dir = realpathSync(dataDir);
  } catch {
    // not there yet: the given path is the best guess
  }
  const call = <T>(fn: () => Promise<T> | T): Promise<T | null> => bounded<T | null>(fn, timeoutMs, null);
  return {
    async warm() {
      await Promise.all([call(() => source.currentLoad()), call(() => source.networkStats())]);
    },
    async read() {
      const [load, mem, fsList, net, temp, time] = await Promise.all([
        call(() => source.currentLoad()),
        call(() => source.mem()),
        call(() => source.fsSize()),
        call(() => source.networkStats()),
        call(() => source.cpuTemperature()),
        call(() => source.time()),
      ]);
      const fs = Array.isArray(fsList) ? mountOf(fsList, dir) : undefined;
      const nets = Array.isArray(net) ? net : [];
      const rate = (key: 'rx_sec' | 'tx_sec'): number | null => {
        const values = nets.map((n) => num(n?.[key])).filter((v): v is number => v !== null);
        return values.length > 0 ? values.reduce((a, b) => a + b, 0) : null;
      };
      const load1 = num(load?.currentLoad);
      return {
        cpuLoadPercent: load1 === null ? null : Math.round(load1 * 10) / 10,
        // 'active' leaves out buffers and page cache, which Linux gives back on demand.
        memUsedBytes: num(mem?.active) ?? num(mem?.used),
        memTotalBytes: num(mem?.total),
        diskUsedBytes: num(fs?.used),
        diskTotalBytes: num(fs?.size),
        diskUsedPercent: num(fs?.use),
        osUptimeS: num(time?.uptime),
        netRxBytesPerSec: rate('rx_sec'),
        netTxBytesPerSec: rate('tx_sec'),
        cpuTempC: num(temp?.main),
      };
    },
  };
}
