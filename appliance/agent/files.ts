// The identity files in <dataDir>/agent (see identity.ts). identity.json is written last and is
// the mark of a finished enrolment. A renewal stages device.key.next, identity.json.next, then
// device.crt.next; the staged certificate is the mark that the new pair is complete, and only then
// do the renames replace the old pair. loadIdentity finishes or discards a renewal a power cut
// interrupted, so the box always starts with a matching key and certificate.
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import type { AgentIdentity } from './identity.ts';

export const agentDir = (dataDir: string): string => join(dataDir, 'agent');

export function agentPaths(dataDir: string) {
  const dir = agentDir(dataDir);
  return {
    dir,
    key: join(dir, 'device.key'),
    cert: join(dir, 'device.crt'),
    ca: join(dir, 'ca.crt'),
    identity: join(dir, 'identity.json'),
    keyNext: join(dir, 'device.key.next'),
    certNext: join(dir, 'device.crt.next'),
    identityNext: join(dir, 'identity.json.next'),
  };
}

/** What identity.json holds; key, certificates and validity come from the PEM files. */
type IdentityMeta = Pick<AgentIdentity, 'deviceId' | 'group' | 'labels' | 'fleetUrl' | 'mqttUrl' | 'enrolledAt'>;

const exists = (path: string): Promise<boolean> => readFile(path).then(
  () => true,
  () => false,
);

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The box's enrolled identity, or undefined when it has none yet. */
export async function loadIdentity(dataDir: string): Promise<AgentIdentity | undefined> {
  await recoverRenewal(dataDir);
  const p = agentPaths(dataDir);
  const metaText = await readOptional(p.identity);
  if (metaText === undefined) return undefined;
  const [keyPem, certPem, caPem] = await Promise.all([readOptional(p.key), readOptional(p.cert), readOptional(p.ca)]);
  if (keyPem === undefined || certPem === undefined || caPem === undefined) {
    throw new Error(`the fleet identity in ${p.dir} is incomplete (device.key, device.crt and ca.crt are all needed); remove ${p.identity} and enrol again with a new token`);
  }
  const meta = JSON.parse(metaText) as IdentityMeta;
  return assemble(meta, keyPem, certPem, caPem);
}

function assemble(meta: IdentityMeta, keyPem: string, certPem: string, caPem: string): AgentIdentity {
  const cert = new X509Certificate(certPem);
  return {
    deviceId: meta.deviceId,
    group: meta.group,
    labels: meta.labels,
    fleetUrl: meta.fleetUrl,
    mqttUrl: meta.mqttUrl,
    keyPem,
    certPem,
    caPem,
    notBefore: cert.validFromDate.toISOString(),
    notAfter: cert.validToDate.toISOString(),
    enrolledAt: meta.enrolledAt,
  };
}

/** The key an enrolment uses: a leftover from an earlier, unfinished attempt, or none yet. */
export async function readPendingKey(dataDir: string): Promise<string | undefined> {
  return readOptional(agentPaths(dataDir).key);
}

export async function writeDeviceKey(dataDir: string, keyPem: string): Promise<void> {
  const p = agentPaths(dataDir);
  await mkdir(p.dir, { recursive: true, mode: 0o700 });
  await writeFileDurable(p.key, keyPem, 0o600);
}

/** Records a finished enrolment; the device key is already on disk. */
export async function saveEnrolment(dataDir: string, meta: IdentityMeta, certPem: string, caPem: string): Promise<AgentIdentity> {
  const p = agentPaths(dataDir);
  await writeFileDurable(p.ca, caPem);
  await writeFileDurable(p.cert, certPem);
  await writeFileDurable(p.identity, json(meta));
  return assemble(meta, await readFile(p.key, 'utf8'), certPem, caPem);
}

/** Stage 1 of a renewal: the new key, durable before its CSR leaves the box. */
export async function stageRenewalKey(dataDir: string, keyPem: string): Promise<void> {
  const p = agentPaths(dataDir);
  await mkdir(p.dir, { recursive: true, mode: 0o700 });
  await writeFileDurable(p.keyNext, keyPem, 0o600);
}

/** Stage 2 and commit: the new certificate (and metadata), then the renames that swap the pair. */
export async function commitRenewal(dataDir: string, meta: IdentityMeta, certPem: string): Promise<AgentIdentity> {
  const p = agentPaths(dataDir);
  await writeFileDurable(p.identityNext, json(meta));
  await writeFileDurable(p.certNext, certPem);
  await recoverRenewal(dataDir);
  const identity = await loadIdentity(dataDir);
  if (!identity) throw new Error(`renewal committed but ${p.identity} is missing`);
  return identity;
}

/** Finishes a renewal whose certificate is staged; otherwise drops staged leftovers. */
export async function recoverRenewal(dataDir: string): Promise<void> {
  const p = agentPaths(dataDir);
  if (await exists(p.certNext)) {
    if (await exists(p.keyNext)) await rename(p.keyNext, p.key);
    if (await exists(p.identityNext)) await rename(p.identityNext, p.identity);
    // Last: while the staged certificate exists, a restart completes the swap.
    await rename(p.certNext, p.cert);
    await fsyncPath(p.dir);
    return;
  }
  if ((await exists(p.keyNext)) || (await exists(p.identityNext))) {
    await rm(p.keyNext, { force: true });
    await rm(p.identityNext, { force: true });
    await fsyncPath(p.dir);
  }
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
