// A shaped network link for uplink tests and benches: a private network namespace joined to the root
// namespace by a veth pair with its own /30 (10.200.0.0/16, used for nothing else), `tc tbf`
// shaping both directions to a line rate, and a cut/restore switch. Peers that play the cloud run
// inside the namespace (startOrthancIn), so everything the box sends them crosses the shaped veth.
//
// Traffic only ever flows on the pair: the namespace has no other interface and no default route,
// and the root side carries an `unreachable` route for the /30 (higher metric than the veth's own),
// so even when the veth is gone packets to those addresses die locally instead of following the
// machine's default route. Needs root, iproute2 (ss too) and sch_tbf; netem, tc classifiers and
// actions are not needed (this kernel has none of them): a cut is a pair of policy-routing
// blackhole rules for TCP inside the namespace.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { startOrthanc, type OrthancInstance, type OrthancOptions } from './orthanc.ts';

const run = promisify(execFile);
const IP = 'ip';
const TC = 'tc';
/** Namespaces are named `<prefix>-<pid>-<hex>`; the pid lets a later run clear what a killed run left. */
export const NETNS_PREFIX = 'mboxnet';
// Our /30s come from here; a candidate overlapping any route on the machine is never used.
const POOL_BASE = ip4('10.200.0.0');
const POOL_SLOTS = 1 << 14; // /16 in /30s
// Above the kernel's connected route (metric 0): only used once the veth is gone.
const SAFETY_METRIC = 4242;
// Rule preferences inside the namespace: the cut rules sit before the local table, moved to 100.
const CUT_PREF_IN = 10;
const CUT_PREF_OUT = 11;
const LOCAL_PREF = 100;

export interface ShapedLinkOptions {
  /** Line rate in bit/s, each direction (e.g. 20e6). */
  rateBitsPerSec: number;
  /** Rate from the namespace back to the root side (ACKs, responses); default rateBitsPerSec. */
  downRateBitsPerSec?: number;
  /** tbf queue, as delay at the line rate (default 50 ms): the line's buffer. */
  queueMs?: number;
  /** tbf bucket (default 16 KiB; must hold one frame). */
  burstBytes?: number;
  /** Interface MTU (default 1500, a WAN's). */
  mtu?: number;
}

export interface LinkCounters {
  /** Date.now() when read. */
  at: number;
  /**
   * Bytes the root side's shaper let onto the line, each frame counted in full with its headers
   * (tbf counts GSO packets as the frames they become): the quantity the line rate limits.
   */
  upWireBytes: number;
  /** Frames the root side's shaper dropped (local congestion: TCP resends them, they are not lost). */
  upShaperDrops: number;
  /** Interface byte counters (GSO packets count their headers once, so a little under the wire). */
  hostTxBytes: number;
  hostRxBytes: number;
  nsRxBytes: number;
  nsTxBytes: number;
}

export interface ShapedLink {
  /** Namespace name, for `ip netns exec`. */
  readonly netns: string;
  /** The root namespace's end of the pair and its address. */
  readonly hostIf: string;
  readonly hostAddress: string;
  /** The namespace's end and its address: where peers inside are reached. */
  readonly nsIf: string;
  readonly nsAddress: string;
  readonly rateBitsPerSec: number;
  /** Line rate in bytes/s as tbf counts them (frames with headers). */
  readonly rateBytesPerSec: number;
  /** Best case payload share of a full frame: TCP payload (MSS with timestamps) / frame length. */
  readonly payloadPerFrame: number;
  readonly isCut: boolean;
  /** `ip netns exec <ns> cmd args`, as [command, args] for spawn(). */
  execArgs(cmd: string, args: readonly string[]): [string, string[]];
  /** Bytes on the root side's tx counter (cheap: one sysfs read), for fine-grained polling. */
  hostTxBytes(): number;
  counters(): Promise<LinkCounters>;
  /** Drops everything on the line, both ways, from now until restore(). */
  cut(): Promise<void>;
  restore(): Promise<void>;
  /** Removes the namespace, the veth pair with its qdiscs, and the safety route. Idempotent. */
  destroy(): Promise<void>;
}

function ip4(s: string): number {
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}
function ip4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const live = new Map<string, { hostIf: string; subnet: string }>();
let hooked = false;

// A test process that dies (assertion, crash, Ctrl-C) must not leave namespaces and routes behind.
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const [ns, l] of live) destroySync(ns, l.hostIf, l.subnet);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    if (process.listenerCount(sig) === 0) process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
  }
}

function quiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

/** Sockets of this (root) namespace, other than TIME-WAIT, that still talk to the link's subnet. */
function socketsToSync(subnet: string): string[] {
  try {
    const out = execFileSync('ss', ['-Htn', 'state', 'connected', 'exclude', 'time-wait', 'dst', subnet], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => l.trim() !== '').map((l) => l.trim().split(/\s+/).filter((_, i) => i === 0 || i === 4).join(' '));
  } catch {
    return [];
  }
}

// The safety route goes last, and only once nothing here still sends to the subnet: with neither
// the veth's route nor it, such a socket's packets would follow the default route off the machine.
// If something still does, the route stays (harmless; the next createShapedLink sweeps it).
function dropSafetyRoute(subnet: string): void {
  const left = socketsToSync(subnet);
  if (left.length > 0) {
    process.stderr.write(`netns: connections to ${subnet} are still closing (${left.join(', ')}; orphaned sockets retransmit for a while); keeping 'unreachable ${subnet} metric ${SAFETY_METRIC}' until the next createShapedLink sweeps it\n`);
    return;
  }
  quiet(IP, ['route', 'del', 'unreachable', subnet, 'metric', String(SAFETY_METRIC)]);
}

function destroySync(ns: string, hostIf: string, subnet: string): void {
  quiet(IP, ['netns', 'del', ns]);
  // The pair goes with the namespace unless a process still holds it; then take it down from here.
  quiet(IP, ['link', 'del', hostIf]);
  dropSafetyRoute(subnet);
  live.delete(ns);
}

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

let support: string | null | undefined;

/**
 * Why a shaped link cannot be built here, or undefined when it can. Builds and removes a throwaway
 * namespace with a shaped veth pair (no address, no traffic), once per process.
 */
export function netnsUnavailable(): string | undefined {
  if (support !== undefined) return support ?? undefined;
  const fail = (why: string): string => (support = why);
  if (process.platform !== 'linux') return fail(`network namespaces need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) return fail('creating network namespaces needs root');
  const id = `${process.pid.toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`.slice(-6);
  const ns = `${NETNS_PREFIX}-probe-${id}`;
  const [h, n] = [`mbx${id}p`, `mbx${id}q`];
  try {
    for (const args of [
      ['netns', 'add', ns],
      ['link', 'add', h, 'type', 'veth', 'peer', 'name', n, 'netns', ns],
    ]) {
      execFileSync(IP, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    execFileSync(TC, ['qdisc', 'add', 'dev', h, 'root', 'tbf', 'rate', '20mbit', 'burst', '16kb', 'latency', '50ms'], { stdio: ['ignore', 'ignore', 'pipe'] });
    support = null;
    return undefined;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return fail(`cannot build a shaped veth pair in a network namespace: ${(e.stderr?.toString() ?? '').trim() || e.message}`);
  } finally {
    quiet(IP, ['netns', 'del', ns]);
    quiet(IP, ['link', 'del', h]);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what this helper made in processes that are gone (killed before their exit hook):
 * namespaces named with a dead pid, and safety routes no veth and no socket uses any more.
 */
async function sweepStale(): Promise<void> {
  const list = await sh(IP, ['netns', 'list']).catch(() => '');
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${NETNS_PREFIX}-(\\d+)-[0-9a-f]+)\\b`).exec(line.trim());
    if (m && !pidAlive(Number(m[2]))) await sh(IP, ['netns', 'del', m[1]!]).catch(() => undefined);
  }
  const routes = JSON.parse(await sh(IP, ['-j', '-4', 'route', 'show', 'table', 'all']).catch(() => '[]')) as Array<{ type?: string; dst: string; metric?: number; dev?: string }>;
  for (const r of routes) {
    if (r.type !== 'unreachable' || r.metric !== SAFETY_METRIC || !r.dst.startsWith('10.200.')) continue;
    const inUse = routes.some((o) => o.dst === r.dst && o.dev !== undefined) || [...live.values()].some((l) => l.subnet === r.dst);
    if (!inUse) dropSafetyRoute(r.dst);
  }
}

interface Cidr {
  base: number;
  bits: number;
}

async function usedRanges(): Promise<Cidr[]> {
  const routes = JSON.parse(await sh(IP, ['-j', '-4', 'route', 'show', 'table', 'all'])) as Array<{ dst: string }>;
  return routes.flatMap((r) => {
    if (r.dst === 'default') return [];
    const [addr, bits] = r.dst.split('/');
    return addr && /^\d+\.\d+\.\d+\.\d+$/.test(addr) ? [{ base: ip4(addr), bits: bits === undefined ? 32 : Number(bits) }] : [];
  });
}

function overlaps(a: Cidr, b: Cidr): boolean {
  const bits = Math.min(a.bits, b.bits);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((a.base & mask) >>> 0) === ((b.base & mask) >>> 0);
}

/** Builds the namespace, the pair, the addresses and the shapers; destroy() it in a finally. */
export async function createShapedLink(opts: ShapedLinkOptions): Promise<ShapedLink> {
  if (!(opts.rateBitsPerSec > 0)) throw new Error(`shaped link: rateBitsPerSec must be > 0, got ${opts.rateBitsPerSec}`);
  const why = netnsUnavailable();
  if (why) throw new Error(why);
  hookExit();
  await sweepStale();
  const used = await usedRanges();
  let base = 0;
  for (let tries = 0; tries < 64 && base === 0; tries++) {
    const candidate = POOL_BASE + 4 * Math.floor(Math.random() * POOL_SLOTS);
    if (!used.some((r) => overlaps(r, { base: candidate, bits: 30 }))) base = candidate;
  }
  if (base === 0) throw new Error('shaped link: no free /30 in 10.200.0.0/16');
  const subnet = `${ip4Text(base)}/30`;
  const hostAddress = ip4Text(base + 1);
  const nsAddress = ip4Text(base + 2);
  const id = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, '0');
  const netns = `${NETNS_PREFIX}-${process.pid}-${id}`;
  const hostIf = `mbx${id}h`;
  const nsIf = `mbx${id}n`;
  const mtu = opts.mtu ?? 1500;
  const queueMs = opts.queueMs ?? 50;
  const burst = opts.burstBytes ?? 16 * 1024;
  live.set(netns, { hostIf, subnet });
  const inNs = (args: string[]): Promise<string> => sh(IP, ['-n', netns, ...args]);
  const shape = async (ns: string | undefined, dev: string, bits: number): Promise<void> => {
    await sh(TC, [...(ns ? ['-n', ns] : []), 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${Math.round(bits)}bit`, 'burst', String(burst), 'latency', `${queueMs}ms`]);
  };
  try {
    // Safety first: while the pair exists its connected route (metric 0) wins; after, this does.
    await sh(IP, ['route', 'add', 'unreachable', subnet, 'metric', String(SAFETY_METRIC)]);
    await sh(IP, ['netns', 'add', netns]);
    await sh(IP, ['link', 'add', hostIf, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', nsIf, 'mtu', String(mtu), 'netns', netns]);
    // No IPv6 link-local addresses: no neighbour discovery chatter in the byte counts.
    await sh(IP, ['link', 'set', hostIf, 'addrgenmode', 'none']).catch(() => undefined);
    await inNs(['link', 'set', nsIf, 'addrgenmode', 'none']).catch(() => undefined);
    await sh(IP, ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    await inNs(['addr', 'add', `${nsAddress}/30`, 'dev', nsIf]);
    await inNs(['link', 'set', 'lo', 'up']);
    // The local table moves behind the cut rules (this namespace only), so a cut can drop packets
    // addressed to the namespace before they are delivered.
    await inNs(['rule', 'add', 'pref', String(LOCAL_PREF), 'lookup', 'local']);
    await inNs(['rule', 'del', 'pref', '0', 'lookup', 'local']);
    await shape(undefined, hostIf, opts.rateBitsPerSec);
    await shape(netns, nsIf, opts.downRateBitsPerSec ?? opts.rateBitsPerSec);
    await sh(IP, ['link', 'set', hostIf, 'up']);
    await inNs(['link', 'set', nsIf, 'up']);
  } catch (err) {
    destroySync(netns, hostIf, subnet);
    throw err;
  }

  let cutNow = false;
  let destroyed = false;
  const statsPath = (name: string): string => `/sys/class/net/${hostIf}/statistics/${name}`;
  const readStat = (name: string): number => Number(readFileSync(statsPath(name), 'utf8'));
  const link: ShapedLink = {
    netns,
    hostIf,
    hostAddress,
    nsIf,
    nsAddress,
    rateBitsPerSec: opts.rateBitsPerSec,
    rateBytesPerSec: opts.rateBitsPerSec / 8,
    // Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12.
    payloadPerFrame: (mtu - 52) / (mtu + 14),
    get isCut() {
      return cutNow;
    },
    execArgs: (cmd, args) => [IP, ['netns', 'exec', netns, cmd, ...args]],
    hostTxBytes: () => readStat('tx_bytes'),
    async counters() {
      const at = Date.now();
      const [qdiscs, nsLinks] = await Promise.all([
        sh(TC, ['-s', '-j', 'qdisc', 'show', 'dev', hostIf]).then((s) => JSON.parse(s) as Array<{ kind: string; root?: boolean; bytes: number; drops: number }>),
        inNs(['-s', '-j', 'link', 'show', 'dev', nsIf]).then((s) => JSON.parse(s) as Array<{ stats64: { rx: { bytes: number }; tx: { bytes: number } } }>),
      ]);
      const tbf = qdiscs.find((q) => q.root) ?? qdiscs[0];
      return {
        at,
        upWireBytes: tbf?.bytes ?? 0,
        upShaperDrops: tbf?.drops ?? 0,
        hostTxBytes: readStat('tx_bytes'),
        hostRxBytes: readStat('rx_bytes'),
        nsRxBytes: nsLinks[0]?.stats64.rx.bytes ?? 0,
        nsTxBytes: nsLinks[0]?.stats64.tx.bytes ?? 0,
      };
    },
    async cut() {
      if (cutNow) return;
      // TCP segments still reach the namespace's interface (so the root side's counters see every
      // byte the box sent), then die there, and no segment from inside finds a route out. Rule
      // changes flush the route cache, so established sockets are cut too. Only TCP: ARP keeps
      // answering, as a clinic's router does while the line behind it is down, so the box sees
      // silence (timeouts), not "host unreachable".
      await inNs(['rule', 'add', 'pref', String(CUT_PREF_IN), 'iif', nsIf, 'ipproto', 'tcp', 'blackhole']);
      await inNs(['rule', 'add', 'pref', String(CUT_PREF_OUT), 'to', hostAddress, 'ipproto', 'tcp', 'blackhole']);
      cutNow = true;
    },
    async restore() {
      if (!cutNow) return;
      await inNs(['rule', 'del', 'pref', String(CUT_PREF_IN)]).catch(() => undefined);
      await inNs(['rule', 'del', 'pref', String(CUT_PREF_OUT)]).catch(() => undefined);
      cutNow = false;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      // Callers stop their peers first. Connections still closing (FIN handshakes, a client's idle
      // keep-alive socket answering the server's FIN) finish while the line still works.
      await link.restore();
      const settle = async (ms: number): Promise<void> => {
        for (let waited = 0; waited < ms && socketsToSync(subnet).length > 0; waited += 100) await new Promise((r) => setTimeout(r, 100));
      };
      await settle(5000);
      await sh(IP, ['netns', 'del', netns]).catch(() => undefined);
      // Deleting the namespace takes the pair with it once nothing runs in there; don't wait for that.
      await sh(IP, ['link', 'del', hostIf]).catch(() => undefined);
      await settle(2000);
      dropSafetyRoute(subnet);
      live.delete(netns);
    },
  };
  return link;
}


/**
 * Orthanc inside the namespace (`ip netns exec`), on its own well-known ports there (the namespace
 * is ours alone), reached at the namespace's address across the shaped line.
 */
export async function startOrthancIn(link: ShapedLink, opts: Omit<OrthancOptions, 'httpPort' | 'placement'> & { httpPort?: number } = {}): Promise<OrthancInstance> {
  return startOrthanc({
    ...opts,
    placement: { host: link.nsAddress, dicomPort: 4242, httpPort: opts.httpPort ?? 8042, exec: (cmd, args) => link.execArgs(cmd, args) },
  });
}
