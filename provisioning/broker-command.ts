// `mbox broker-config`: everything an external mosquitto needs to serve a fleet — a server
// certificate from the fleet CA, the CA to verify boxes, and the ACL that mirrors the embedded
// broker's rules — then the fleet runs with `--broker mqtts://host:port`.
import { resolve } from 'node:path';
import { writeMosquittoConfig } from '../fleet/broker/mosquitto.ts';
import { openPki } from '../fleet/pki/pki.ts';
import { ConfigError } from '../shared/config/load.ts';
import { createLogger } from '../shared/log.ts';
import { fleetDataDir, parseFlags } from './args.ts';

export const BROKER_USAGE = `usage: mbox broker-config --out <dir> [--data-dir <fleet dir>] [--host 0.0.0.0] [--port 8883] [--public-host <name>]... [--run-as <user>]

  Writes mosquitto.conf, its ACL and TLS files into <dir> for an external broker serving this
  fleet (certificate from the fleet CA; boxes are identified by their certificate CN). Started as
  root, mosquitto switches to --run-as (default: mosquitto), which must be able to read <dir>. Then:
    mosquitto -c <dir>/mosquitto.conf
    mbox fleet --data-dir <fleet dir> --broker mqtts://<public host>:<port> \\
      --broker-crl-file <dir>/crl.pem --broker-crl-reload 'systemctl reload mosquitto'
  The fleet keeps crl.pem listing revoked and replaced box certificates; mosquitto re-reads it on
  reload (SIGHUP).`;

export async function brokerConfigCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, { values: ['data-dir', 'out', 'host', 'port', 'run-as'], lists: ['public-host'] }, BROKER_USAGE);
  if (flags.positionals.length > 0) throw new ConfigError(`unexpected argument '${flags.positionals[0]}'\n${BROKER_USAGE}`);
  const out = flags.values.get('out');
  if (!out) throw new ConfigError(`--out is required\n${BROKER_USAGE}`);
  const port = Number(flags.values.get('port') ?? '8883');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`--port must be 1-65535, got '${flags.values.get('port')}'`);
  const host = flags.values.get('host') ?? '0.0.0.0';
  const hosts = (flags.lists.get('public-host') ?? []).concat(host === '0.0.0.0' || host === '::' ? [] : [host]);
  const pki = await openPki(resolve(fleetDataDir(flags), 'ca'), createLogger('warn'));
  const server = await pki.serverCredentials(hosts);
  // An empty CRL to start with: the fleet rewrites it (--broker-crl-file) as boxes are revoked or renewed.
  const crlPem = await pki.signCrl([]);
  const { confPath } = await writeMosquittoConfig({ dir: resolve(out), host, port, caPem: pki.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem, crlPem,
    ...(flags.values.get('run-as') ? { runAsUser: flags.values.get('run-as')! } : {}),
  });
  const crlPath = resolve(out, 'crl.pem');
  process.stderr.write(
    `mosquitto config for this fleet written (CA pin ${pki.caPin})\n  mosquitto -c ${confPath}\n` +
      `  mbox fleet --broker mqtts://<host>:${port} --broker-crl-file ${crlPath} --broker-crl-reload 'systemctl reload mosquitto'\n` +
      `  (the fleet needs write access to ${resolve(out)} to replace the CRL)\n`,
  );
  process.stdout.write(`${confPath}\n`);
}
