// What /proc says about a process (RSS, peak RSS, CPU time, open descriptors) and about the
// machine's limits, read from outside so a measured process pays nothing for being measured.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

/** USER_HZ: clock ticks per second in /proc/<pid>/stat (100 on every Linux this runs on). */
const CLK_TCK = Number(tryExec('getconf', ['CLK_TCK'])) || 100;

function tryExec(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export interface ProcSample {
  at: number;
  rssBytes: number;
  /** VmHWM: the peak RSS over the process's life. */
  hwmBytes: number;
  /** utime + stime, ms. */
  cpuMs: number;
  fds: number;
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    let fds = 0;
    try {
      fds = readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      fds = -1;
    }
    return { at: Date.now(), rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM'), cpuMs: (ticks * 1000) / CLK_TCK, fds };
  } catch {
    return undefined;
  }
}

/** Jiffies the whole machine spent busy and in all, from the first line of /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  try {
    const cols = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    const total = cols.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - (cols[3] ?? 0) - (cols[4] ?? 0), total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Share of all CPUs busy between two machineCpu() readings, %. */
export const machineBusyPct = (a: { busy: number; total: number }, b: { busy: number; total: number }): number | null =>
  b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : null;

/** CPU use between two samples, as % of one core. */
export const cpuPercent = (a: ProcSample, b: ProcSample): number => ((b.cpuMs - a.cpuMs) / Math.max(1, b.at - a.at)) * 100;

export interface HostFacts {
  cpu: string;
  cpus: number;
  memBytes: number;
  kernel: string;
  node: string;
  mosquitto: string;
  /** RLIMIT_NOFILE soft/hard of this process (children inherit it). */
  nofileSoft: number;
  nofileHard: number;
  /** Whether the hard limit can be raised (it cannot without CAP_SYS_RESOURCE). */
  nofileRaisable: boolean;
  ephemeralPorts: string;
  loadAvg: number[];
}

export function hostFacts(): HostFacts {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
  const num = (s: string | undefined): number => (s === 'unlimited' ? Infinity : Number(s ?? 0));
  const hard = num(m?.[2]);
  const raised = tryExec('sh', ['-c', `ulimit -Hn ${hard === Infinity ? 'unlimited' : hard + 1000} 2>/dev/null && echo yes`]);
  let ephemeralPorts = '';
  try {
    ephemeralPorts = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().replace(/\s+/, '–');
  } catch {
    /* not Linux */
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memBytes: totalmem(),
    kernel: tryExec('uname', ['-r']),
    node: process.version,
    mosquitto: tryExec('sh', ['-c', '/usr/sbin/mosquitto -h 2>&1 | head -1']) || 'not installed',
    nofileSoft: num(m?.[1]),
    nofileHard: hard,
    nofileRaisable: raised === 'yes',
    ephemeralPorts,
    loadAvg: loadavg(),
  };
}
