// A real Debian mosquitto on a free loopback port, configured by fleet/broker/mosquitto.ts (the
// external-broker mode under test). Runs in the foreground in its own process group; stop() kills
// it and removes its temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeMosquittoConfig } from '../../fleet/broker/mosquitto.ts';
import { earlyExitError, freePort, LOOPBACK, spawnPeer, waitForPort } from './ports.ts';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export interface RunningMosquitto {
  url: string;
  port: number;
  /** Its config dir; crl.pem there when started with one. */
  dir: string;
  pid: number;
  outputTail(): string;
  stop(): Promise<void>;
}

export async function startMosquitto(opts: { caPem: string; serverCertPem: string; serverKeyPem: string; crlPem?: string }): Promise<RunningMosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-mosquitto-'));
  try {
    const port = await freePort();
    // As root, mosquitto drops to the "mosquitto" user, which cannot read a root-only temp dir.
    const runAsUser = process.getuid?.() === 0 ? 'root' : undefined;
    const { confPath } = await writeMosquittoConfig({ dir, host: LOOPBACK, port, ...opts, ...(runAsUser ? { runAsUser } : {}) });
    const peer = spawnPeer(MOSQUITTO_BIN, ['-c', confPath], { scratchDir: dir });
    try {
      await waitForPort(port, 10_000, () => earlyExitError('mosquitto', peer));
    } catch (err) {
      await peer.stop(1000);
      throw err;
    }
    return {
      url: `mqtts://${LOOPBACK}:${port}`,
      port,
      dir,
      pid: peer.child.pid!,
      outputTail: () => peer.outputTail(),
      async stop() {
        await peer.stop(5000);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
