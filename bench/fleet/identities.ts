// The simulated fleet's identities: a fleet CA, one EC P-256 key + CSR + certificate per box issued
// through the fleet's own PKI (the real enrolment path minus HTTP), and a pristine device registry
// that lists every box. The CA and certificates are made once per box count and cached under
// bench/work/ (git-ignored), because issuing ~20,000 certificates takes minutes; every mode gets a
// fresh fleet data dir with a copy of the CA and a newly filled registry.
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DeviceRegistry } from '../../fleet/devices/registry.ts';
import { openPki } from '../../fleet/pki/pki.ts';
import { createLogger } from '../../shared/log.ts';

export const WORK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'work', 'fleet');

/** What a simulated box needs to connect; one JSON line per box in boxes.jsonl. */
export interface SimBox {
  id: string;
  keyPem: string;
  certPem: string;
  serial: string;
  notAfter: string;
  clinic: string;
}

export interface FleetFixture {
  dir: string;
  count: number;
  caCertPem: string;
  /** boxes.jsonl: one SimBox per line, in id order. */
  boxesPath: string;
  /** How the cache was made (from its manifest), for the report. */
  made: { at: string; keygenMs: number; csrMs: number; issueMs: number; workers: number; reused: boolean };
}

const CERT_VALIDITY_DAYS = 365;
const REGISTER_CONCURRENCY = 256;

/** Topic-safe ids matching DEVICE_ID_PATTERN, sortable. */
export const simDeviceId = (i: number): string => `mb-sim${String(i).padStart(6, '0')}`;
/** ~50 boxes per clinic, so per-clinic stats have realistic cardinality. */
export const simClinic = (i: number): string => `clinic-${String(Math.floor(i / 50)).padStart(4, '0')}`;

/** Loads the cached fixture for `count` boxes, making it first when missing or incomplete. */
export async function prepareFixture(count: number, say: (line: string) => void): Promise<FleetFixture> {
  const dir = join(WORK_DIR, `ids-${count}`);
  const manifestPath = join(dir, 'manifest.json');
  try {
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as FleetFixture['made'] & { count: number };
    if (manifest.count === count) {
      say(`fleet bench: reusing ${count} cached box identities in ${dir}`);
      return { dir, count, caCertPem: await readFile(join(dir, 'ca', 'ca.crt'), 'utf8'), boxesPath: join(dir, 'boxes.jsonl'), made: { ...manifest, reused: true } };
    }
  } catch {
    // No complete cache: make it below.
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const log = createLogger('warn');
  const pki = await openPki(join(dir, 'ca'), log);
  const workers = Math.max(1, Math.min(4, availableParallelism()));
  say(`fleet bench: issuing ${count} box certificates through the fleet PKI (${workers} worker threads; cached afterwards)`);
  const started = Date.now();
  const slices = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const from = Math.floor((count * w) / workers);
      const to = Math.floor((count * (w + 1)) / workers);
      return issueSlice(join(dir, 'ca'), from, to, (done) => w === 0 && done % 1000 === 0 && say(`  … ${done * workers} of ${count}`));
    }),
  );
  const boxes = slices.flatMap((s) => s.boxes);
  const timing = slices.reduce((a, s) => ({ keygenMs: a.keygenMs + s.keygenMs, csrMs: a.csrMs + s.csrMs, issueMs: a.issueMs + s.issueMs }), { keygenMs: 0, csrMs: 0, issueMs: 0 });
  say(`fleet bench: ${count} certificates in ${((Date.now() - started) / 1000).toFixed(1)} s wall (CPU per box: keygen ${(timing.keygenMs / count).toFixed(2)} ms, CSR ${(timing.csrMs / count).toFixed(2)} ms, issue ${(timing.issueMs / count).toFixed(2)} ms)`);

  await writeFile(join(dir, 'boxes.jsonl'), boxes.map((b) => JSON.stringify(b)).join('\n') + '\n');
  const made = { at: new Date().toISOString(), ...timing, workers, reused: false };
  // Written last: its presence marks the cache complete.
  await writeFile(manifestPath, JSON.stringify({ count, ...made }, null, 2) + '\n');
  return { dir, count, caCertPem: pki.caCertPem, boxesPath: join(dir, 'boxes.jsonl'), made };
}

interface SliceResult {
  boxes: SimBox[];
  keygenMs: number;
  csrMs: number;
  issueMs: number;
}

function issueSlice(caDir: string, from: number, to: number, progress: (done: number) => void): Promise<SliceResult> {
  return new Promise((resolvePromise, reject) => {
    const worker = new Worker(new URL('./issue-worker.ts', import.meta.url), { workerData: { caDir, from, to, validityDays: CERT_VALIDITY_DAYS } });
    worker.on('message', (m: { progress?: number; result?: SliceResult }) => {
      if (m.progress !== undefined) progress(m.progress);
      if (m.result) resolvePromise(m.result);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`certificate worker for boxes ${from}..${to} exited with ${code}`)));
  });
}

/**
 * A fresh fleet data dir: a copy of the fixture's CA, and a device registry listing every box
 * (made here each time rather than cached, so it always has the registry's current layout).
 * Returns the ms the registration took.
 */
export async function seedDataDir(fx: FleetFixture, dataDir: string): Promise<number> {
  await mkdir(dataDir, { recursive: true });
  await cp(join(fx.dir, 'ca'), join(dataDir, 'ca'), { recursive: true });
  const boxes = await readBoxes(fx, 0, fx.count);
  const started = Date.now();
  const registry = await DeviceRegistry.open(join(dataDir, 'devices'), createLogger('warn'));
  try {
    for (let i = 0; i < boxes.length; i += REGISTER_CONCURRENCY) {
      await Promise.all(
        boxes.slice(i, i + REGISTER_CONCURRENCY).map((b) =>
          registry.register({
            id: b.id,
            group: 'bench',
            labels: { clinic: b.clinic },
            hostname: `${b.id}.clinic.local`,
            firmware: '0.1.0',
            enrolledAt: new Date().toISOString(),
            enrolToken: 'bench',
            certSerial: b.serial,
            certNotAfter: b.notAfter,
          }),
        ),
      );
    }
  } finally {
    await registry.close();
  }
  return Date.now() - started;
}

/** Boxes [from, to) of the fixture. */
export async function readBoxes(fx: FleetFixture, from: number, to: number): Promise<SimBox[]> {
  const lines = (await readFile(fx.boxesPath, 'utf8')).split('\n');
  const out: SimBox[] = [];
  for (let i = from; i < to; i++) {
    const line = lines[i];
    if (!line) throw new Error(`${fx.boxesPath} has no line ${i + 1}`);
    out.push(JSON.parse(line) as SimBox);
  }
  return out;
}
