// Loopback port helpers plus the child-process lifecycle shared by the peer helpers (Orthanc,
// storescp) and the benchmark targets: they all need "spawn, notice an early death, stop for sure".
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/** A port that was free a moment ago. Racy by nature; callers bind it right away. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Resolves once something accepts TCP connections on 127.0.0.1:port. `abort` is polled too, so a
 * caller waiting for its own child can fail fast when the child has died.
 */
export async function waitForPort(port: number, timeoutMs = 10_000, abort?: () => Error | null, host = LOOPBACK): Promise<void> {
  await waitUntil(() => tryConnect(port, host), timeoutMs, `port ${host}:${port}`, abort);
}

/** Polls `check` until it returns true; a thrown error counts as "not yet". */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string, abort?: () => Error | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    const fatal = abort?.();
    if (fatal) throw fatal;
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
}

export interface PeerProcess {
  readonly child: ChildProcess;
  /** Set once the process has exited (code or signal), so waiters can fail fast. */
  exited(): { code: number | null; signal: string | null } | null;
  /** Last lines of stdout+stderr, for error messages. */
  outputTail(): string;
  /** SIGTERM the whole process group, SIGKILL after graceMs; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

// Peers live in their own process group (storescp --fork children included); if this Node process
// exits without stopping them (crash, process.exit, Ctrl-C), the exit hook still takes them down
// and removes their scratch dirs.
const live = new Map<ChildProcess, string | undefined>();
let hooked = false;
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

export interface SpawnPeerOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Lines of output kept for outputTail(). */
  keepLines?: number;
  /** Scratch dir removed by the exit hook if this process is still running when Node exits. */
  scratchDir?: string;
}

/**
 * Spawns a long-running peer. DCMTK-based peers leave Nagle on unless TCP_NODELAY=1 is in their
 * environment (each small PDU then waits for a delayed ACK, ~40 ms per object), so it is always set.
 */
export function spawnPeer(cmd: string, args: readonly string[], opts: SpawnPeerOptions = {}): PeerProcess {
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const [c, dir] of live) {
        killGroup(c, 'SIGKILL');
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    });
    // Detached peers miss the terminal's Ctrl-C, and a signal death skips 'exit' hooks: turn an
    // otherwise unhandled SIGINT/SIGTERM into a normal exit so the hook above still runs.
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      if (process.listenerCount(sig) === 0) process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
    }
  }
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env, TCP_NODELAY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.set(child, opts.scratchDir);
  const keep = opts.keepLines ?? 40;
  let lines: string[] = [];
  // Per stream, the unfinished last line waits for its end so messages are not cut in two.
  const collect = (stream: NodeJS.ReadableStream | null): void => {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = (parts.pop() ?? '').slice(-4096);
      lines.push(...parts.filter((l) => l.trim() !== ''));
      if (lines.length > keep * 2) lines = lines.slice(-keep);
    });
    stream?.on('end', () => partial.trim() !== '' && lines.push(partial));
  };
  collect(child.stdout);
  collect(child.stderr);
  let status: { code: number | null; signal: string | null } | null = null;
  const gone = new Promise<void>((resolve) => {
    // 'close' rather than 'exit': it comes after the output pipes drained, so outputTail() is whole.
    child.once('close', (code, signal) => {
      status = { code, signal };
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      lines.push(`spawn error: ${err.message}`);
      status = { code: null, signal: null };
      live.delete(child);
      resolve();
    });
  });
  return {
    child,
    exited: () => status,
    outputTail: () => lines.slice(-keep).join('\n'),
    async stop(graceMs = 10_000) {
      if (status === null) killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
      // Forked children (storescp --fork) may outlive the leader briefly.
      killGroup(child, 'SIGKILL');
    },
  };
}

/** Error for a peer that died while we waited for it to become ready. */
export function earlyExitError(name: string, peer: PeerProcess): Error | null {
  const st = peer.exited();
  if (!st) return null;
  const how = st.signal ? `signal ${st.signal}` : `exit code ${st.code}`;
  return new Error(`${name} exited during startup (${how}):\n${peer.outputTail()}`);
}
