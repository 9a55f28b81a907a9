// One mode of the fleet bench: a fresh fleet (embedded aedes, or an external mosquitto), the
// simulated boxes connected at a ramp, a settle period, then a steady window in which the fleet's
// process, its broker and its metrics are sampled. Everything it starts is stopped and its temp
// dir removed, whatever happens.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeMosquittoConfig } from '../../fleet/broker/mosquitto.ts';
import { openPki } from '../../fleet/pki/pki.ts';
import { createLogger } from '../../shared/log.ts';
import { earlyExitError, freePort, LOOPBACK, spawnPeer, waitForPort, type PeerProcess } from '../../test/helpers/ports.ts';
import { BoxClient } from './box-client.ts';
import { brokerConnections, startFleetChild, type FleetChild } from './fleet-proc.ts';
import { readBoxes, seedDataDir, type FleetFixture } from './identities.ts';
import { runProbes } from './probe.ts';
import { cpuPercent, machineBusyPct, machineCpu, sampleProc, type ProcSample } from './proc.ts';
import { loadavg } from 'node:os';
import { SimFleet } from './sims.ts';
import { MB } from './stats.ts';
import { collectModeResult, type ModeResult, type RunOptions, type Tick, type Window } from './result.ts';

export type Mode = 'aedes' | 'mosquitto';
const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export async function runMode(mode: Mode, fx: FleetFixture, o: RunOptions, say: (l: string) => void): Promise<ModeResult> {
  const dataDir = await mkdtemp(join(tmpdir(), `mbox-fleet-bench-${mode}-`));
  let mosquitto: PeerProcess | undefined;
  let fleet: FleetChild | undefined;
  let sims: SimFleet | undefined;
  const probes: BoxClient[] = [];
  const ticks: Tick[] = [];
  const started = Date.now();
  try {
    const registerS = (await seedDataDir(fx, dataDir)) / 1000;
    let brokerUrl: string | undefined;
    let brokerPort = await freePort();
    if (mode === 'mosquitto') {
      const pki = await openPki(join(dataDir, 'ca'), createLogger('warn'));
      const server = await pki.serverCredentials([LOOPBACK]);
      const dir = join(dataDir, 'mosquitto');
      await mkdir(dir);
      const { confPath } = await writeMosquittoConfig({
        dir, host: LOOPBACK, port: brokerPort, caPem: fx.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem,
        ...(process.getuid?.() === 0 ? { runAsUser: 'root' } : {}),
      });
      mosquitto = spawnPeer(MOSQUITTO_BIN, ['-c', confPath], { keepLines: 40 });
      await waitForPort(brokerPort, 10_000, () => earlyExitError('mosquitto', mosquitto!));
      brokerUrl = `mqtts://${LOOPBACK}:${brokerPort}`;
    }
    const adminToken = randomBytes(24).toString('base64url');
    fleet = await startFleetChild({
      dataDir, httpPort: await freePort(), mqttPort: mode === 'aedes' ? brokerPort : await freePort(), adminToken, caPem: fx.caCertPem,
      ...(brokerUrl ? { broker: brokerUrl } : {}), ...(o.cpuProfDir ? { cpuProfDir: join(o.cpuProfDir, mode) } : {}),
    });
    const url = `mqtts://${LOOPBACK}:${brokerPort}`;
    say(`  ${mode}: fleet pid ${fleet.pid}${mosquitto ? `, mosquitto pid ${mosquitto.child.pid}` : ''}, broker ${url}`);
    const brokerPid = mosquitto?.child.pid ?? fleet.pid;
    const sample = (): { fleet?: ProcSample; broker?: ProcSample } => ({ fleet: sampleProc(fleet!.pid), ...(mosquitto ? { broker: sampleProc(brokerPid) } : {}) });
    const idle = sample();

    // Probe boxes (the last few) live in this process; the rest in the simulators.
    const probeCount = Math.min(o.probes, Math.max(0, fx.count - 1));
    const simTo = fx.count - probeCount;
    const boxes = await readBoxes(fx, simTo, fx.count);
    const noop = (): void => undefined;
    for (const [k, b] of boxes.entries()) probes.push(new BoxClient(b, simTo + k, { url, caPem: fx.caCertPem, keepaliveS: o.keepaliveS, intervalMs: o.intervalMs, events: { ready: (p) => p.stopTelemetry(), failed: noop, dropped: noop, published: noop } }));
    sims = await SimFleet.start({ procs: o.simProcs, boxesPath: fx.boxesPath, from: 0, to: simTo, url, caPem: fx.caCertPem, intervalMs: o.intervalMs, keepaliveS: o.keepaliveS, ratePerSec: o.ratePerSec, maxPending: o.maxPending });
    for (const p of probes) p.connect();

    // Ramp: until every box is up on the simulator side and online in the fleet, or the timeout.
    const rampDeadline = Date.now() + (fx.count / o.ratePerSec) * 3000 + 120_000;
    let allUpAt: number | null = null;
    let fleetOnlineAt: number | null = null;
    let last = idle;
    for (;;) {
      await sleep(1000);
      const fatal = sims.failure() ?? earlyExitError('fleet', fleet.peer) ?? (mosquitto ? earlyExitError('mosquitto', mosquitto) : null);
      if (fatal) throw fatal;
      const tick = await takeTick(fleet, sims, probes, brokerPort, sample(), last, started, ticks.length % 5 === 0);
      ticks.push(tick);
      last = { fleet: tick.fleetProc, ...(tick.brokerProc ? { broker: tick.brokerProc } : {}) };
      const upNow = tick.simUp + tick.probesUp;
      if (ticks.length % 5 === 0) say(`  ${mode}: ${Math.round((Date.now() - started) / 1000)} s — boxes up ${upNow}/${fx.count}, fleet online ${tick.fleetOnline ?? '?'}, broker sockets ${tick.brokerSockets ?? '?'}, fleet RSS ${mb(tick.fleetProc?.rssBytes)} MB (heap ${tick.fleetHeapMB?.toFixed(0) ?? '?'}), CPU ${tick.fleetCpuPct?.toFixed(0) ?? '?'} %${tick.brokerCpuPct !== null ? `, mosquitto ${tick.brokerCpuPct.toFixed(0)} %` : ''}; machine ${tick.machineBusyPct?.toFixed(0) ?? '?'} % busy, load ${tick.load1.toFixed(1)}`);
      if (upNow === fx.count) allUpAt ??= Date.now();
      if ((tick.fleetOnline ?? 0) >= fx.count) fleetOnlineAt ??= Date.now();
      if (allUpAt && fleetOnlineAt) break;
      if (Date.now() > rampDeadline) {
        say(`  ${mode}: ramp timed out with ${upNow}/${fx.count} boxes up; measuring what is connected`);
        break;
      }
    }
    const rampEnd = sample();

    await sleep(o.settleS * 1000);
    const w0 = { proc: sample(), metrics: await fleet.metrics(), sims: await sims.poll(), at: Date.now() };
    const windowTicks: Tick[] = [];
    say(`  ${mode}: steady window ${o.durationS} s`);
    const until = Date.now() + o.durationS * 1000;
    const probing = runProbes(probes, fleet, o.intervalMs, until);
    last = w0.proc;
    while (Date.now() < until) {
      await sleep(Math.min(1000, Math.max(0, until - Date.now())));
      const tick = await takeTick(fleet, sims, probes, brokerPort, sample(), last, started, false);
      last = { fleet: tick.fleetProc, ...(tick.brokerProc ? { broker: tick.brokerProc } : {}) };
      windowTicks.push(tick);
    }
    const probe = await probing;
    const w1 = { proc: sample(), metrics: await fleet.metrics(), sims: await sims.poll(), at: Date.now() };
    const online = await fleet.get<unknown[]>('/api/devices?online=true');
    const window: Window = { w0, w1, ticks: windowTicks, fleetOnlineApi: online.status === 200 ? online.body.length : null, brokerSockets: brokerConnections(brokerPort), probe };
    return { ...collectModeResult({ mode, count: fx.count, o, idle, rampEnd, ticks, window, allUpAt, fleetOnlineAt, sims, embedded: !mosquitto }), registerS };
  } catch (err) {
    say(`  ${mode}: FAILED — ${(err as Error).message}`);
    if (fleet) say(`  fleet output:\n${fleet.peer.outputTail()}`);
    return { mode, ok: false, error: (err as Error).message, boxes: fx.count, ticks } as ModeResult;
  } finally {
    for (const p of probes) p.destroy();
    await sims?.stop().catch(() => undefined);
    await fleet?.stop().catch(() => undefined);
    await mosquitto?.stop(5000).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function takeTick(fleet: FleetChild, sims: SimFleet, probes: BoxClient[], brokerPort: number, now: { fleet?: ProcSample; broker?: ProcSample }, last: { fleet?: ProcSample; broker?: ProcSample }, started: number, countSockets: boolean): Promise<Tick> {
  const s = await sims.poll();
  let fleetOnline: number | null = null;
  let messages: number | null = null;
  let heapMB: number | null = null;
  let externalMB: number | null = null;
  const machine = machineCpu();
  const machinePct = machineBusyPct(lastMachine, machine);
  lastMachine = machine;
  try {
    const m = await fleet.metrics();
    fleetOnline = m.get('mbox_fleet_devices{state="online"}') ?? null;
    messages = m.get('mbox_fleet_messages_total{kind="telemetry"}') ?? 0;
    heapMB = (m.get('mbox_fleet_nodejs_heap_size_used_bytes') ?? NaN) / MB;
    externalMB = (m.get('mbox_fleet_nodejs_external_memory_bytes') ?? NaN) / MB;
  } catch {
    // A fleet too busy to answer within 30 s is itself a finding: the tick says null.
  }
  return {
    t: Math.round((Date.now() - started) / 100) / 10,
    simUp: s.up,
    probesUp: probes.filter((p) => p.state === 'up').length,
    simPublished: s.published,
    fleetOnline,
    fleetTelemetry: messages,
    brokerSockets: countSockets ? brokerConnections(brokerPort) : null,
    fleetProc: now.fleet,
    fleetCpuPct: now.fleet && last.fleet ? cpuPercent(last.fleet, now.fleet) : null,
    brokerProc: now.broker,
    brokerCpuPct: now.broker && last.broker ? cpuPercent(last.broker, now.broker) : null,
    simCpuMs: s.cpuMs,
    simLoopDelayP99Ms: s.loopDelayP99Ms,
    fleetHeapMB: heapMB,
    fleetExternalMB: externalMB,
    machineBusyPct: machinePct,
    load1: loadavg()[0]!,
  };
}

let lastMachine = machineCpu();

const mb = (b: number | undefined): string => (b === undefined ? '?' : (b / 1024 / 1024).toFixed(0));
