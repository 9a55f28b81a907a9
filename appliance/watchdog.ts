// The box's side of systemd's service protocol (mbox.service: Type=notify, WatchdogSec=60s,
// NotifyAccess=all): READY=1 once it serves, then WATCHDOG=1 while it works. systemd kills and
// restarts a service that stops pinging, so a box whose event loop or store is wedged comes back by
// itself instead of sitting silent until someone visits the clinic.
//
// Node's dgram speaks UDP only, not AF_UNIX datagrams, so the messages go through systemd's own
// `systemd-notify` helper (hence NotifyAccess=all). It runs only when the check passed: a ping
// from a bare timer would prove the timer, not the box.
import { execFile } from 'node:child_process';
import type { Logger } from '../shared/log.ts';

export interface NotifySettings {
  /**
   * Between watchdog pings — a quarter of WATCHDOG_USEC, so one slow helper or check never trips
   * it — or null when systemd set no watchdog for this process.
   */
  watchdogIntervalMs: number | null;
}

/**
 * Whether systemd listens (NOTIFY_SOCKET: the unit is Type=notify and waits for READY=1), and
 * whether it watches this process: WATCHDOG_USEC set and WATCHDOG_PID, when present, naming us —
 * the launcher execs Node, so the unit's main PID is this process.
 */
export function notifySettings(env: NodeJS.ProcessEnv, pid = process.pid): NotifySettings | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  const usec = Number(env.WATCHDOG_USEC);
  const ours = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  const watchdogIntervalMs = Number.isSafeInteger(usec) && usec > 0 && ours ? Math.max(50, Math.floor(usec / 4000)) : null;
  return { watchdogIntervalMs };
}

export type Notify = (fields: string[]) => Promise<void>;

/** `systemd-notify FIELD=value …`; systemd 252 waits on a barrier until the manager has read it. */
export const systemdNotify: Notify = (fields) =>
  new Promise((resolve, reject) => {
    execFile('systemd-notify', fields, { timeout: 10_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`systemd-notify ${fields.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });

export interface WatchdogOptions {
  settings: NotifySettings;
  /** Resolves when the box is working (the store answers); a rejection or a hang skips the ping. */
  check: () => Promise<void>;
  /** One line for `systemctl status mbox`. */
  status: () => string;
  log: Logger;
  notify?: Notify;
}

export interface RunningWatchdog {
  /** Pings sent since start (tests, the admin API). */
  readonly pings: number;
  stop(): Promise<void>;
}

export function startWatchdog(opts: WatchdogOptions): RunningWatchdog {
  const { settings, log } = opts;
  const notify = opts.notify ?? systemdNotify;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let pings = 0;
  let lastProblem = '';
  // Logged when it changes, not on every tick: a wedged store would otherwise flood the journal.
  const problem = (what: string, err: unknown): void => {
    const text = `${what}: ${(err as Error).message}`;
    if (text !== lastProblem) log.warn({ err: (err as Error).message }, `watchdog: ${what}`);
    lastProblem = text;
  };

  const intervalMs = settings.watchdogIntervalMs;
  const tick = async (ms: number): Promise<void> => {
    try {
      await withTimeout(opts.check(), ms, 'the health check did not answer');
    } catch (err) {
      problem('check failed, no ping (systemd restarts the box if this lasts)', err);
      return;
    }
    try {
      await notify(['WATCHDOG=1', `STATUS=${opts.status()}`]);
      pings++;
      if (lastProblem) log.info('watchdog: pinging again');
      lastProblem = '';
    } catch (err) {
      problem('ping failed', err);
    }
  };
  const schedule = (): void => {
    if (stopped || intervalMs === null) return;
    timer = setTimeout(() => void tick(intervalMs).finally(schedule), intervalMs);
  };

  // mbox.service is Type=notify: this ends the start, and systemd arms the watchdog from here.
  notify(['READY=1', `STATUS=${opts.status()}`]).catch((err: unknown) => problem('ready notification failed', err));
  schedule();
  log.info({ watchdogIntervalMs: intervalMs }, intervalMs === null ? 'told systemd the box is ready (no watchdog)' : 'told systemd the box is ready; watchdog armed');

  return {
    get pings() {
      return pings;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await notify(['STOPPING=1', 'STATUS=stopping']).catch((err: unknown) => problem('stopping notification failed', err));
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
