// A box that does not run from an A/B slot (a development checkout, `npm start`, the in-process
// test box) answers an offer with 'refused: not updatable' — it never installs a release somewhere
// that would not run — and reports the version it runs as committed when that is what is offered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpdateInfo } from '../../../appliance/agent/update/updater.ts';
import type { DeviceUpdate } from '../../../shared/fleet/api.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { startTestFleet, type TestFleet } from '../../helpers/fleet.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { publishOffer } from './updater-harness.ts';
import { FIRMWARE_VERSION } from '../../../appliance/agent/firmware.ts';

describe('updater on a box outside the slot layout', () => {
  let fleet: TestFleet;
  let box: TestBox;
  let deviceId: string;

  beforeAll(async () => {
    fleet = await startTestFleet();
    const token = await fleet.api.post<{ token: string }>('/api/tokens/enrolment', { group: 'dev', expires: '1h' });
    box = await startBox(['--fleet-url', fleet.baseUrl, '--enrol-token', token.body.token]);
    await waitUntil(async () => (await box.get<{ connected: boolean }>('/api/agent')).body.connected, 20_000, 'box online');
    deviceId = (await box.get<{ deviceId: string }>('/api/agent')).body.deviceId;
  });

  afterAll(async () => {
    await box?.stop();
    await fleet?.destroy();
  });

  const offer = (version: string, rolloutId: string) => ({
    rolloutId,
    version,
    url: `${fleet.baseUrl}/api/releases/${version}/bundle`,
    sha256: '0'.repeat(64),
    size: 1000,
    retryApproved: false,
    offeredAt: new Date().toISOString(),
  });

  it('refuses a new version as not updatable, and the status reaches the fleet retained', async () => {
    const info = (await box.get<UpdateInfo>('/api/update')).body;
    expect(info).toMatchObject({ updatable: false, reason: 'not updatable: not running from an A/B slot', runningVersion: FIRMWARE_VERSION, trial: null });
    await publishOffer({ fleet, deviceId }, offer('99.0.0', 'ro-dev-1'));
    await waitUntil(async () => (await box.get<UpdateInfo>('/api/update')).body.status?.phase === 'refused', 10_000, 'refused');
    const st = (await box.get<UpdateInfo>('/api/update')).body.status;
    expect(st).toMatchObject({ rolloutId: 'ro-dev-1', version: '99.0.0', phase: 'refused', reason: 'not updatable: not running from an A/B slot', runningVersion: FIRMWARE_VERSION, failedVersions: [] });
    // The fleet's rollout service keeps the last status a box sent, rollout or not.
    await waitUntil(async () => (await fleet.api.get<DeviceUpdate>(`/api/devices/${deviceId}/update`)).body.status?.rolloutId === 'ro-dev-1', 10_000, 'fleet has the status');
  });

  it('says committed for the version it already runs', async () => {
    await publishOffer({ fleet, deviceId }, offer(FIRMWARE_VERSION, 'ro-dev-2'));
    await waitUntil(async () => (await box.get<UpdateInfo>('/api/update')).body.status?.rolloutId === 'ro-dev-2', 10_000, 'answered');
    expect((await box.get<UpdateInfo>('/api/update')).body.status).toMatchObject({ phase: 'committed', reason: `already running ${FIRMWARE_VERSION}` });
    await publishOffer({ fleet, deviceId }, null);
  });
});
