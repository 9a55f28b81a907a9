// Simulated boxes for rollout tests and the rollout bench: real identities issued by the fleet's
// own CA and registered in its device registry (as enrolment would), real mqtt.js clients over
// mutual TLS, and an updater that follows shared/update/messages.ts like a box: it reads the
// retained offer, downloads the bundle over HTTPS with its device certificate in Range requests,
// checks size and sha256, reports each phase as a retained UpdateStatus, and commits or rolls back.
// It remembers releases that failed on it and refuses them unless the offer carries retryApproved.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { buildCsr } from '../../../appliance/agent/csr.ts';
import { DeviceRegistry } from '../../../fleet/devices/registry.ts';
import { openPki } from '../../../fleet/pki/pki.ts';
import { buildBundle, initKeys } from '../../../image-build/bundle/index.ts';
import type { StatusMessage } from '../../../shared/fleet/messages.ts';
import { topics } from '../../../shared/fleet/topics.ts';
import { createLogger } from '../../../shared/log.ts';
import type { UpdateOffer, UpdateStatus } from '../../../shared/update/messages.ts';

export interface SimIdentity {
  id: string;
  keyPem: string;
  certPem: string;
  serial: string;
}

export const simId = (prefix: string, i: number): string => `mb-${prefix}${String(i).padStart(4, '0')}`;

/** A fleet data dir with a CA and `count` registered boxes of `group` running `firmware`. */
export async function seedBoxes(dataDir: string, opts: { prefix: string; count: number; group: string; firmware: string; from?: number }): Promise<SimIdentity[]> {
  await mkdir(dataDir, { recursive: true });
  const log = createLogger('silent');
  const pki = await openPki(join(dataDir, 'ca'), log);
  const out: SimIdentity[] = [];
  for (let i = opts.from ?? 0; i < (opts.from ?? 0) + opts.count; i++) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const id = simId(opts.prefix, i);
    const issued = await pki.issueDeviceCertificate(await buildCsr(privateKey), id, 30);
    out.push({ id, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certPem: issued.certPem, serial: issued.serial });
  }
  const registry = await DeviceRegistry.open(join(dataDir, 'devices'), log);
  try {
    for (const b of out) {
      await registry.register({
        id: b.id,
        group: opts.group,
        labels: { clinic: `clinic-${b.id.slice(-2)}` },
        hostname: `${b.id}.local`,
        firmware: opts.firmware,
        enrolledAt: new Date().toISOString(),
        enrolToken: 'sim',
        certSerial: b.serial,
        certNotAfter: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      });
    }
  } finally {
    await registry.close();
  }
  return out;
}

/** A signing key pair and a signed bundle of `payloadBytes` random bytes (plus a small file). */
export async function makeRelease(dir: string, opts: { version: string; payloadBytes: number; keysDir?: string }): Promise<{ file: string; publicKeyPath: string; privateKeyPath: string; sha256: string; size: number }> {
  const keysDir = opts.keysDir ?? join(dir, 'keys');
  const keys = await initKeys(keysDir).catch(async (err: unknown) => {
    if (!String((err as Error).message).includes('refusing to overwrite')) throw err;
    return { privateKeyPath: join(keysDir, 'bundle-signing.key.pem'), publicKeyPath: join(keysDir, 'bundle-signing.pub.pem') };
  });
  const stage = join(dir, `stage-${opts.version}-${randomBytes(3).toString('hex')}`);
  await mkdir(join(stage, 'app'), { recursive: true });
  await writeFile(join(stage, 'app', 'VERSION'), `${opts.version}\n`);
  await writeFile(join(stage, 'app', 'payload.bin'), randomBytes(opts.payloadBytes));
  const file = join(dir, `mbox-${opts.version}-${randomBytes(3).toString('hex')}.mbx`);
  const built = await buildBundle({
    stageDir: stage,
    out: file,
    version: opts.version,
    arch: 'arm64',
    nodeVersion: '24.21.0',
    createdAt: '2026-11-01T00:00:00.000Z',
    dataSchema: 1,
    privateKeyPem: await readFile(keys.privateKeyPath, 'utf8'),
  });
  return { file, publicKeyPath: keys.publicKeyPath, privateKeyPath: keys.privateKeyPath, sha256: built.sha256, size: built.size };
}

export interface SimBehaviour {
  /** Roll back (reason 'health check failed: …') on the first try of a release. */
  failFirstTry: boolean;
  /** Wait before acting on an offer (an offline box, a busy one); a withdrawal meanwhile cancels. */
  actDelayMs: number;
  /** The health window before committing. */
  healthMs: number;
  /** Range requests per download (≥ 1): the download is fetched in that many pieces. */
  pieces: number;
}

export interface ReceivedOffer {
  offer: UpdateOffer;
  at: number;
}

/** Downloads [start, end] of `url` with the box's certificate; resolves with the status and bytes. */
export function fetchRange(url: string, id: SimIdentity, caPem: string, range?: { start: number; end?: number }): Promise<{ status: number; body: Buffer; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: caPem, cert: id.certPem, key: id.keyPem, agent: false, headers: range ? { range: `bytes=${range.start}-${range.end ?? ''}` } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export class SimUpdateBox {
  readonly identity: SimIdentity;
  readonly behaviour: SimBehaviour;
  readonly offers: ReceivedOffer[] = [];
  /** Empty retained payloads seen (offer withdrawn or cleared). */
  withdrawals = 0;
  readonly reported: UpdateStatus[] = [];
  failedVersions: string[] = [];
  firmware: string;
  downloadedBytes = 0;
  rangeRequests = 0;
  /** Per final report: ms from receiving the offer to reporting the outcome (benchmarks). */
  readonly outcomes: Array<{ rolloutId: string; phase: UpdateStatus['phase']; ms: number; downloadMs: number }> = [];
  private receivedAt = 0;
  private downloadMs = 0;
  private client: MqttClient | undefined;
  private current: { offer: UpdateOffer; cancelled: boolean; at: number } | undefined;
  private busy: Promise<void> = Promise.resolve();
  private readonly caPem: string;
  private readonly mqttUrl: string;

  constructor(identity: SimIdentity, opts: { mqttUrl: string; caPem: string; firmware: string; behaviour: SimBehaviour }) {
    this.identity = identity;
    this.behaviour = opts.behaviour;
    this.firmware = opts.firmware;
    this.caPem = opts.caPem;
    this.mqttUrl = opts.mqttUrl;
  }

  get id(): string {
    return this.identity.id;
  }

  async connect(): Promise<void> {
    const id = this.id;
    const will: StatusMessage = { online: false, at: new Date().toISOString(), reason: 'connection-lost', firmware: this.firmware };
    const client = mqtt.connect(this.mqttUrl, {
      protocolVersion: 4,
      clientId: id,
      clean: false,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 20_000,
      key: this.identity.keyPem,
      cert: this.identity.certPem,
      ca: this.caPem,
      rejectUnauthorized: true,
      will: { topic: topics.status(id), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    });
    this.client = client;
    client.on('message', (topic, payload) => {
      if (topic !== topics.updateOffer(id)) return;
      if (payload.length === 0) {
        this.withdrawals++;
        if (this.current) this.current.cancelled = true;
        return;
      }
      const offer = JSON.parse(payload.toString('utf8')) as UpdateOffer;
      this.offers.push({ offer, at: Date.now() });
      const job = { offer, cancelled: false, at: Date.now() };
      if (this.current) this.current.cancelled = true;
      this.current = job;
      this.busy = this.busy.then(() => this.follow(job)).catch(() => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await this.publishOnline();
    await client.subscribeAsync({ [topics.updateOffer(id)]: { qos: 1 } });
  }

  /** Disconnects; an offer not acted on yet is dropped (the box is gone). */
  async close(): Promise<void> {
    if (this.current) this.current.cancelled = true;
    await this.client?.endAsync(true);
  }

  /** Waits until the box is not working on an offer. */
  idle(): Promise<void> {
    return this.busy;
  }

  private publishOnline(): Promise<unknown> {
    const online: StatusMessage = { online: true, at: new Date().toISOString(), reason: 'connected', firmware: this.firmware };
    return this.client!.publishAsync(topics.status(this.id), JSON.stringify(online), { qos: 1, retain: true });
  }

  private async report(offer: UpdateOffer, phase: UpdateStatus['phase'], extra: Partial<UpdateStatus> = {}): Promise<void> {
    const st: UpdateStatus = { rolloutId: offer.rolloutId, version: offer.version, phase, runningVersion: this.firmware, failedVersions: [...this.failedVersions], at: new Date().toISOString(), ...extra };
    this.reported.push(st);
    if (['committed', 'rolled-back', 'refused', 'failed'].includes(phase)) this.outcomes.push({ rolloutId: offer.rolloutId, phase, ms: Date.now() - this.receivedAt, downloadMs: this.downloadMs });
    await this.client!.publishAsync(topics.updateStatus(this.id), JSON.stringify(st), { qos: 1, retain: true });
  }

  private async follow(job: { offer: UpdateOffer; cancelled: boolean; at: number }): Promise<void> {
    const { offer } = job;
    if (this.behaviour.actDelayMs > 0) await sleep(this.behaviour.actDelayMs);
    if (job.cancelled || offer.version === this.firmware) return;
    this.receivedAt = job.at;
    this.downloadMs = 0;
    try {
      await this.install(offer);
    } catch (err) {
      await this.report(offer, 'failed', { reason: (err as Error).message.slice(0, 300) });
    }
  }

  private async install(offer: UpdateOffer): Promise<void> {
    if (this.failedVersions.includes(offer.version) && !offer.retryApproved) {
      return this.report(offer, 'refused', { reason: `${offer.version} failed on this box before; not re-approved` });
    }
    await this.report(offer, 'downloading', { progress: { bytes: 0, total: offer.size } });
    const started = Date.now();
    const body = await this.download(offer);
    this.downloadMs = Date.now() - started;
    await this.report(offer, 'verifying');
    const sha = createHash('sha256').update(body).digest('hex');
    if (body.length !== offer.size || sha !== offer.sha256) return this.report(offer, 'refused', { reason: `bundle sha256 ${sha} or size ${body.length} differs from the offer` });
    await this.report(offer, 'installing');
    await this.report(offer, 'restarting');
    await this.report(offer, 'health-check');
    await sleep(this.behaviour.healthMs);
    const firstTry = !this.failedVersions.includes(offer.version);
    if (this.behaviour.failFirstTry && firstTry) {
      this.failedVersions.push(offer.version);
      return this.report(offer, 'rolled-back', { reason: 'health check failed: DICOM port did not answer C-ECHO' });
    }
    this.firmware = offer.version;
    this.failedVersions = this.failedVersions.filter((v) => v !== offer.version);
    await this.report(offer, 'committed');
    await this.publishOnline();
  }

  private async download(offer: UpdateOffer): Promise<Buffer> {
    const parts: Buffer[] = [];
    const pieces = Math.max(1, this.behaviour.pieces);
    const step = Math.ceil(offer.size / pieces);
    for (let start = 0; start < offer.size; start += step) {
      const end = Math.min(offer.size, start + step) - 1;
      const res = await fetchRange(offer.url, this.identity, this.caPem, { start, end });
      if (res.status !== 206) throw new Error(`${this.id}: bundle download answered ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
      this.downloadedBytes += res.body.length;
      this.rangeRequests++;
      parts.push(res.body);
    }
    return Buffer.concat(parts);
  }
}

/** POST /api/releases with a file or bytes as the raw body. */
export function uploadBundle(fleet: { baseUrl: string; pki: { caCertPem: string } }, file: string | Buffer, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/api/releases', fleet.baseUrl), { method: 'POST', ca: fleet.pki.caCertPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') as Record<string, unknown> });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: { text } });
        }
      });
    });
    req.on('error', reject);
    if (Buffer.isBuffer(file)) req.end(file);
    else createReadStream(file).on('error', reject).pipe(req);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Mulberry32: a small seeded PRNG, so "which 10 % fail" is the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `k` distinct indexes of [0, n) picked by `rand`. */
export function pick(n: number, k: number, rand: () => number): Set<number> {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return new Set(idx.slice(0, k));
}
