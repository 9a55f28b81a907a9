// `npm run bench rollout`: a staged rollout over simulated boxes against a fleet child process
// (`mbox fleet`, embedded broker). Each box is a real mqtt.js client over mutual TLS with a
// certificate from the fleet CA; it follows its offer like a box (Range downloads of the signed
// bundle over mTLS, sha256 check, phases reported, a fixed health window, commit). Measured: time
// from "rollout started" (the fleet's createdAt) to each wave's committed (its completedAt), the
// bundle size and the bytes the boxes downloaded, and per box offer → committed.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RolloutView, WaveSpec } from '../fleet/rollouts/schemas.ts';
import { FleetClient } from '../test/helpers/fleet.ts';
import { freePort, waitUntil } from '../test/helpers/ports.ts';
import { makeRelease, pick, seedBoxes, seeded, SimUpdateBox, uploadBundle } from '../test/integration/update/rollout-sim.ts';
import { startFleetChild } from './fleet/fleet-proc.ts';
import { formatText, writeResults, type Table } from './lib/table.ts';

export interface RolloutBenchOptions {
  boxes: number;
  bundleMb: number;
  /** One scenario per value, each against a fresh fleet. */
  failPercents: number[];
  pieces: number;
  healthMs: number;
  seed: number;
  waves: WaveSpec[];
}

export function parseRolloutArgs(argv: string[]): RolloutBenchOptions {
  const o: RolloutBenchOptions = { boxes: 100, bundleMb: 8, failPercents: [0, 10], pieces: 4, healthMs: 500, seed: 1, waves: parseWaves('1,10%,50%,100%') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const num = (): number => {
      const v = Number(next());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${flag} needs a non-negative number`);
      return v;
    };
    if (flag === '--boxes') o.boxes = Math.max(1, Math.round(num()));
    else if (flag === '--bundle-mb') o.bundleMb = num();
    else if (flag === '--fail-percent') o.failPercents = next().split(',').map((v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0 || n > 100) throw new Error(`--fail-percent: '${v}' is not a percentage`);
      return n;
    });
    else if (flag === '--pieces') o.pieces = Math.max(1, Math.round(num()));
    else if (flag === '--health-ms') o.healthMs = num();
    else if (flag === '--seed') o.seed = Math.round(num());
    else if (flag === '--waves') o.waves = parseWaves(next());
    else throw new Error(`unknown option ${flag} for the rollout bench`);
  }
  return o;
}

/** "1,10%,50%,100%": a number is a count of boxes, a percentage a share (both cumulative). */
function parseWaves(text: string): WaveSpec[] {
  return text.split(',').map((w) => {
    const t = w.trim();
    const spec = t.endsWith('%') ? { percent: Number(t.slice(0, -1)) } : { count: Number(t) };
    if (!Object.values(spec).every((v) => Number.isFinite(v) && v > 0)) throw new Error(`--waves: '${t}' is neither a count nor a percentage`);
    return { ...spec, successThreshold: 1, failureThreshold: 0.1 };
  });
}

const pctl = (xs: number[], p: number): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? null;
};

interface ScenarioResult {
  failPercent: number;
  view: RolloutView;
  sims: SimUpdateBox[];
  bundleBytes: number;
  buildMs: number;
  uploadMs: number;
}

export async function runRolloutCli(argv: string[]): Promise<boolean> {
  const o = parseRolloutArgs(argv);
  const results: ScenarioResult[] = [];
  for (const failPercent of o.failPercents) results.push(await runScenario(o, failPercent));
  return report(o, results);
}

async function runScenario(o: RolloutBenchOptions, failPercent: number): Promise<ScenarioResult> {
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const work = await mkdtemp(join(tmpdir(), 'mbox-bench-rollout-'));
  const dataDir = join(work, 'fleet');
  const sims: SimUpdateBox[] = [];
  let fleet: Awaited<ReturnType<typeof startFleetChild>> | undefined;
  try {
    let t = Date.now();
    const ids = await seedBoxes(dataDir, { prefix: 'bn', count: o.boxes, group: 'bench', firmware: '1.0.0' });
    say(`rollout bench (${failPercent} % failing): ${o.boxes} box identities issued by the fleet CA and registered in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    t = Date.now();
    const release = await makeRelease(work, { version: '2.0.0', payloadBytes: Math.round(o.bundleMb * 1e6) });
    const buildMs = Date.now() - t;
    const adminToken = `bench-${randomBytes(12).toString('hex')}`;
    const [httpPort, mqttPort] = [await freePort(), await freePort()];
    const caPem = await readFile(join(dataDir, 'ca', 'ca.crt'), 'utf8');
    // The child inherits the environment: that is how it learns the release key (MBOX_* = flag).
    process.env.MBOX_RELEASE_PUBKEYS = release.publicKeyPath;
    fleet = await startFleetChild({ dataDir, httpPort, mqttPort, adminToken, caPem });
    const baseUrl = `https://127.0.0.1:${httpPort}`;
    const api = new FleetClient(baseUrl, caPem, adminToken);
    t = Date.now();
    const up = await uploadBundle({ baseUrl, pki: { caCertPem: caPem } }, release.file, adminToken);
    const uploadMs = Date.now() - t;
    if (up.status !== 201) throw new Error(`upload answered ${up.status}: ${JSON.stringify(up.body)}`);

    const failing = new Set([...pick(o.boxes, Math.round((o.boxes * failPercent) / 100), seeded(o.seed))].map((i) => ids[i]!.id));
    for (const id of ids) {
      sims.push(new SimUpdateBox(id, { mqttUrl: `mqtts://127.0.0.1:${mqttPort}`, caPem, firmware: '1.0.0', behaviour: { failFirstTry: failing.has(id.id), actDelayMs: 0, healthMs: o.healthMs, pieces: o.pieces } }));
    }
    for (let i = 0; i < sims.length; i += 25) await Promise.all(sims.slice(i, i + 25).map((b) => b.connect()));
    await waitUntil(async () => (await api.get<Array<{ online: boolean }>>('/api/devices?group=bench')).body.filter((d) => d.online).length === o.boxes, 60_000, 'every box online');
    say(`rollout bench: ${o.boxes} boxes online; bundle ${(release.size / 1e6).toFixed(2)} MB; starting the rollout`);

    const created = await api.post<RolloutView>('/api/rollouts', { version: '2.0.0', group: 'bench', waves: o.waves });
    if (created.status !== 201) throw new Error(`POST /api/rollouts answered ${created.status}: ${JSON.stringify(created.body)}`);
    let view = created.body;
    const deadline = Date.now() + 10 * 60_000;
    while (view.state === 'running' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      view = (await api.get<RolloutView>(`/api/rollouts/${view.id}`)).body;
    }
    await Promise.all(sims.map((b) => b.idle()));
    view = (await api.get<RolloutView>(`/api/rollouts/${view.id}`)).body;
    return { failPercent, view, sims, bundleBytes: release.size, buildMs, uploadMs };
  } finally {
    await Promise.all(sims.map((b) => b.close().catch(() => undefined)));
    await fleet?.stop();
    delete process.env.MBOX_RELEASE_PUBKEYS;
    await rm(work, { recursive: true, force: true });
  }
}

function waveRows(r: ScenarioResult) {
  const { view, sims } = r;
  const started = Date.parse(view.createdAt);
  return view.waves.map((w, i) => {
    const t = view.tallies[i];
    const outcomes = sims.flatMap((b) => (view.boxes.find((x) => x.deviceId === b.id)?.wave === i ? b.outcomes.filter((x) => x.rolloutId === view.id) : []));
    const ok = outcomes.filter((x) => x.phase === 'committed');
    return {
      wave: i + 1,
      boxes: w.size,
      committed: t?.committed ?? 0,
      failed: t?.failures ?? 0,
      startedS: w.startedAt ? (Date.parse(w.startedAt) - started) / 1000 : null,
      committedS: w.completedAt ? (Date.parse(w.completedAt) - started) / 1000 : null,
      waveS: w.startedAt && w.completedAt ? (Date.parse(w.completedAt) - Date.parse(w.startedAt)) / 1000 : null,
      boxP50Ms: pctl(ok.map((x) => x.ms), 50),
      boxP95Ms: pctl(ok.map((x) => x.ms), 95),
      downloadP50Ms: pctl(ok.map((x) => x.downloadMs), 50),
    };
  });
}

function bytesOf(r: ScenarioResult) {
  const downloaded = r.sims.reduce((s, b) => s + b.downloadedBytes, 0);
  const installs = r.sims.filter((b) => b.downloadedBytes > 0).length;
  const ranges = r.sims.reduce((s, b) => s + b.rangeRequests, 0);
  return { bundle: r.bundleBytes, downloaded, installs, ranges };
}

async function report(o: RolloutBenchOptions, results: ScenarioResult[]): Promise<boolean> {
  const tables: Table[] = [];
  for (const r of results) {
    const { view } = r;
    const waves = waveRows(r);
    const paused = view.timeline.find((e) => e.event === 'paused');
    tables.push({
      title: `${o.boxes} simulated boxes, ${r.failPercent} % failing — rollout started → wave committed`,
      columns: [
        { header: 'wave' },
        { header: 'boxes', digits: 0 },
        { header: 'committed', digits: 0 },
        { header: 'failed', digits: 0 },
        { header: 'wave started (s)', digits: 3 },
        { header: 'wave committed (s)', digits: 3 },
        { header: 'wave duration (s)', digits: 3 },
        { header: 'box offer → committed p50 (ms)', digits: 0 },
        { header: 'p95 (ms)', digits: 0 },
        { header: 'download p50 (ms)', digits: 0 },
      ],
      rows: waves.map((w) => [`${w.wave}`, w.boxes, w.committed, w.failed, w.startedS, w.committedS, w.waveS, w.boxP50Ms, w.boxP95Ms, w.downloadP50Ms]),
      notes: [
        `Final state: ${view.state}${view.pauseReason ? ` (${view.pauseReason}), paused ${((Date.parse(paused?.at ?? view.updatedAt) - Date.parse(view.createdAt)) / 1000).toFixed(3)} s after the start` : ''}; boxes offered: ${r.sims.filter((b) => b.offers.length > 0).length} of ${o.boxes}.`,
        `Injected failures: ${r.failPercent} % (seed ${o.seed}) roll back on their first try; every wave: failureThreshold 0.1, successThreshold 1.0.`,
      ],
    });
  }
  const bytesTable: Table = {
    title: 'Bundle and download bytes',
    columns: [{ header: 'figure' }, ...results.map((r) => ({ header: `${r.failPercent} % failing`, digits: 2 }))],
    rows: [
      ['bundle size (MB)', ...results.map((r) => r.bundleBytes / 1e6)],
      ['bundle build (s)', ...results.map((r) => r.buildMs / 1000)],
      ['upload + verify on the fleet (s)', ...results.map((r) => r.uploadMs / 1000)],
      ['boxes that downloaded', ...results.map((r) => String(bytesOf(r).installs))],
      ['bytes downloaded, all boxes (MB)', ...results.map((r) => bytesOf(r).downloaded / 1e6)],
      ['bytes downloaded per box (MB)', ...results.map((r) => (bytesOf(r).installs ? bytesOf(r).downloaded / bytesOf(r).installs / 1e6 : null))],
      ['Range requests', ...results.map((r) => String(bytesOf(r).ranges))],
    ],
    notes: [
      `Each box: retained offer → ${o.pieces} Range requests over mutual TLS → sha256 check → phases reported → a fixed ${o.healthMs} ms health window → committed. A real box's health window is minutes; here it is short so the figures show the fleet's orchestration and the download.`,
      'The bundle payload is random bytes (incompressible); downloads count bundle bytes only (TLS and HTTP headers not counted). Times are the fleet\'s own: rollout createdAt → each wave\'s startedAt / completedAt (all its boxes final and the success threshold met).',
    ],
  };
  tables.push(bytesTable);
  for (const tb of tables) console.log(`\n${formatText(tb)}`);
  const preamble = [`Host: ${cpus()[0]?.model ?? 'unknown CPU'} ×${cpus().length}, Node ${process.version}; load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine). Fleet: a child process (\`mbox fleet\`, embedded aedes, fresh data dir per scenario); boxes: mqtt.js clients in the bench process.`];
  const data = {
    options: o,
    scenarios: results.map((r) => ({ failPercent: r.failPercent, rollout: { id: r.view.id, state: r.view.state, pauseReason: r.view.pauseReason ?? null, counts: r.view.counts }, waves: waveRows(r), bytes: bytesOf(r), uploadMs: r.uploadMs, buildMs: r.buildMs })),
  };
  const written = await writeResults('rollout', data, tables, { preamble });
  process.stderr.write(`rollout bench: results in ${written.jsonPath} and ${written.markdownPath}\n`);
  // A clean scenario must complete; one with failures must stop before the last wave's boxes.
  return results.every((r) => (r.failPercent === 0 ? r.view.state === 'completed' : r.view.state !== 'running'));
}
