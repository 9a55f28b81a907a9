// `mbox <command>`: the one entry point for operators, tests and systemd units.
import { readFileSync } from 'node:fs';
import { ApplianceConfigSchema } from '../config/appliance.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import { FleetConfigSchema } from '../config/fleet.ts';
import { createLogger, type Logger } from '../log.ts';

const USAGE = `usage: mbox <command> [--config <file>] [--<key> <value> ...]

commands:
  appliance     run the box (DICOM receiver, watch folders, store, uplink, admin API)
  fleet         run the fleet manager (enrolment, MQTT broker, device API + dashboard, cloud receiver)
  status        print the local box's health, queue and fleet link (enrolment, connection)
  ca init       create or import the fleet CA (--data-dir <fleet dir>; see \`mbox ca\`)
  token         enrolment tokens: create | list | revoke (--data-dir <fleet dir>; see \`mbox token\`)
  broker-config write a mosquitto config for \`mbox fleet --broker mqtts://…\` (--out <dir>)
  keys init     create the release-signing key pair (--dir <dir>)
  bundle        signed update bundles: build | verify (see \`mbox bundle\`)
  --version     print the version

Every config key is also a flag (--dicom-port 11112) and an MBOX_* variable (MBOX_DICOM_PORT).`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function appliance(argv: string[]): Promise<void> {
  const config = loadConfig(ApplianceConfigSchema, { argv, env: process.env });
  const log = createLogger(config.logLevel);
  const { startAppliance } = await import('../../appliance/appliance.ts');
  stopOnSignals(await startAppliance(config, log), log);
}

async function fleet(argv: string[]): Promise<void> {
  const config = loadConfig(FleetConfigSchema, { argv, env: process.env });
  const log = createLogger(config.logLevel);
  const { startFleet } = await import('../../fleet/fleet.ts');
  stopOnSignals(await startFleet(config, log), log);
}

function stopOnSignals(service: { stop(): Promise<void> }, log: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function status(argv: string[]): Promise<void> {
  const config = loadConfig(ApplianceConfigSchema, { argv, env: process.env });
  const base = `http://${config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost}:${config.httpPort}`;
  const [health, queue, agent] = await Promise.all([fetch(`${base}/healthz`), fetch(`${base}/api/queue`), fetch(`${base}/api/agent`)]);
  process.stdout.write(`${JSON.stringify({ health: await health.json(), queue: await queue.json(), fleet: await agent.json() }, null, 2)}\n`);
  if (!health.ok) process.exitCode = 1;
}

async function ca(argv: string[]): Promise<void> {
  const { caCommand } = await import('../../provisioning/ca-command.ts');
  await caCommand(argv);
}

async function token(argv: string[]): Promise<void> {
  const { tokenCommand } = await import('../../provisioning/token-command.ts');
  await tokenCommand(argv);
}

async function brokerConfig(argv: string[]): Promise<void> {
  const { brokerConfigCommand } = await import('../../provisioning/broker-command.ts');
  await brokerConfigCommand(argv);
}

async function keys(argv: string[]): Promise<void> {
  const { keysCommand } = await import('../../image-build/bundle/command.ts');
  await keysCommand(argv);
}

async function bundle(argv: string[]): Promise<void> {
  const { bundleCommand } = await import('../../image-build/bundle/command.ts');
  await bundleCommand(argv);
}

const commands: Record<string, (argv: string[]) => Promise<void>> = { appliance, fleet, status, ca, token, 'broker-config': brokerConfig, keys, bundle };

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const run = command ? commands[command] : undefined;
  if (!run) {
    process.stderr.write(`${command ? `unknown command '${command}'\n` : ''}${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  await run(rest);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`mbox: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`mbox: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
});
