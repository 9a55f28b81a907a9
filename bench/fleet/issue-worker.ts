// Worker thread for ./identities.ts: makes keys and CSRs for boxes [from, to) and has the fleet CA
// (loaded read-only from caDir) issue their certificates, as enrolment would.
import { generateKeyPairSync } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { buildCsr } from '../../appliance/agent/csr.ts';
import { openPki } from '../../fleet/pki/pki.ts';
import { createLogger } from '../../shared/log.ts';
import { simClinic, simDeviceId, type SimBox } from './identities.ts';

const { caDir, from, to, validityDays } = workerData as { caDir: string; from: number; to: number; validityDays: number };
const pki = await openPki(caDir, createLogger('warn'));
const boxes: SimBox[] = [];
let keygenMs = 0;
let csrMs = 0;
let issueMs = 0;
for (let i = from; i < to; i++) {
  let t = performance.now();
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  keygenMs += performance.now() - t;
  t = performance.now();
  const csr = await buildCsr(privateKey);
  csrMs += performance.now() - t;
  t = performance.now();
  const id = simDeviceId(i);
  const issued = await pki.issueDeviceCertificate(csr, id, validityDays);
  issueMs += performance.now() - t;
  boxes.push({ id, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certPem: issued.certPem, serial: issued.serial, notAfter: issued.notAfter.toISOString(), clinic: simClinic(i) });
  if ((i - from + 1) % 250 === 0) parentPort?.postMessage({ progress: i - from + 1 });
}
parentPort?.postMessage({ result: { boxes, keygenMs, csrMs, issueMs } });
