// `mbox broker-config` as an operator runs it, then Debian mosquitto on what it wrote: the broker
// starts with the fleet's CA, server certificate, ACL and (empty) CRL, and a fleet pointed at it with
// --broker-crl-file keeps that CRL.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { x509 } from '../../../shared/crypto/x509.ts';
import { startTestFleet } from '../../helpers/fleet.ts';
import { MOSQUITTO_BIN } from '../../helpers/mosquitto.ts';
import { earlyExitError, freePort, spawnPeer, waitForPort } from '../../helpers/ports.ts';

const MBOX = resolve(import.meta.dirname, '../../../scripts/mbox');

function mbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(MBOX, args, { env: { ...process.env, MBOX_DATA_DIR: undefined } }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-broker-config-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('mbox broker-config', () => {
  it('writes a mosquitto config that Debian mosquitto runs, with a CRL the fleet then maintains', async () => {
    const fleetDir = join(dir, 'fleet');
    const out = join(dir, 'mosquitto');
    expect((await mbox('ca', 'init', '--data-dir', fleetDir)).code).toBe(0);
    const port = await freePort();
    const runAs = process.getuid?.() === 0 ? ['--run-as', 'root'] : [];
    const res = await mbox('broker-config', '--data-dir', fleetDir, '--out', out, '--host', '127.0.0.1', '--port', String(port), ...runAs);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout.trim()).toBe(join(out, 'mosquitto.conf'));
    expect(res.stderr).toMatch(/--broker-crl-file .*crl\.pem/);
    expect((await stat(join(out, 'server.key'))).mode & 0o777).toBe(0o600);
    const conf = await readFile(join(out, 'mosquitto.conf'), 'utf8');
    expect(conf).toMatch(new RegExp(`^crlfile ${join(out, 'crl.pem')}$`, 'm'));
    const written = await readFile(join(out, 'crl.pem'), 'utf8');
    expect(new x509.X509Crl(written).entries).toHaveLength(0);

    const broker = spawnPeer(MOSQUITTO_BIN, ['-c', join(out, 'mosquitto.conf')]);
    try {
      await waitForPort(port, 10_000, () => earlyExitError('mosquitto', broker));
      const fleet = await startTestFleet(['--broker', `mqtts://127.0.0.1:${port}`, '--broker-crl-file', join(out, 'crl.pem'), '--broker-crl-reload', `kill -HUP ${broker.child.pid}`], fleetDir);
      try {
        const health = await fleet.api.get<{ broker: string }>('/healthz');
        expect(health.body.broker).toBe('connected');
        // Re-signed by the fleet on start (ECDSA signatures differ each time), and the broker took the reload.
        const resigned = await readFile(join(out, 'crl.pem'), 'utf8');
        expect(resigned).not.toBe(written);
        expect(new x509.X509Crl(resigned).entries).toHaveLength(0);
        expect(broker.exited()).toBeNull();
      } finally {
        await fleet.destroy();
      }
    } finally {
      await broker.stop(5000);
    }
  }, 60_000);

  it('refuses a CRL file without an external broker', async () => {
    await expect(startTestFleet(['--broker-crl-file', join(dir, 'crl.pem')], join(dir, 'fleet'))).rejects.toThrow(/external broker/);
  });
});
