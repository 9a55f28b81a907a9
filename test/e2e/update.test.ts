// Updates end to end on real processes: a box in an A/B slot root under the real launcher and a
// supervisor that restarts it like systemd, a real fleet that takes signed releases and rolls them
// out, and real bundles of this app with other versions. One box goes through:
//   (a) a good update (with a data migration) → committed; it runs and reports the new version,
//       its data, config and identity survive;
//   (c) a release whose health check fails (its DICOM port answers C-ECHO with a failure) →
//       rolled back by itself within the window; the fleet shows the rollback and why; the data
//       its migration changed is restored;
//   (f) the same release again: the fleet does not offer it; a fleet that forgot offers it and the
//       box refuses it on its own memory; an admin's re-approval makes the box take it.
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storescu } from '../helpers/dcmtk.ts';
import { daikonSeries } from '../helpers/data.ts';
import { startTestFleet } from '../helpers/fleet.ts';
import { buildRelease, fleetView, rollOut, startLab, updateInfo, waitBox, waitFleet, type Lab, type Release } from '../integration/update/updater-harness.ts';

/** 1.1.0 migrates the data to schema 2: notes/a.txt rewritten, notes/b.txt added. */
const MIGRATION_TO_2 = `import type { Migration } from './schema.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
export const BASE_DATA_SCHEMA = 1;
export const MIGRATIONS: readonly Migration[] = [
  { to: 2, description: 'notes v2', touches: ['notes'], up: async (d) => { await writeFile(join(d, 'notes/a.txt'), 'alpha v2'); await writeFile(join(d, 'notes/b.txt'), 'beta'); } },
];
export const DATA_SCHEMA = 2;
`;

/** 1.2.0 adds schema 3 (notes/a.txt again, plus extra.json). */
const MIGRATION_TO_3 = MIGRATION_TO_2.replace(
  '];\nexport const DATA_SCHEMA = 2;',
  `  { to: 3, description: 'extra', touches: ['notes/a.txt', 'extra.json'], up: async (d) => { await writeFile(join(d, 'notes/a.txt'), 'alpha v3'); await writeFile(join(d, 'extra.json'), '{}'); } },
];
export const DATA_SCHEMA = 3;`,
);

/**
 * 1.2.0's DICOM service answers C-ECHO with 0x0110 (processing failure) while `marker` exists: a
 * release that starts, listens and looks alive, but cannot do its job on this box.
 */
function failingEcho(marker: string): (src: string) => string {
  return (src) => {
    const out = src.replace('response.setStatus(Status.Success);\n    callback(response);', `response.setStatus(existsSync(${JSON.stringify(marker)}) ? 0x0110 : Status.Success);\n    callback(response);`);
    if (out === src) throw new Error('dimse-scp.ts changed: the C-ECHO patch no longer applies');
    return `import { existsSync } from 'node:fs';\n${out}`;
  };
}

describe('box updates end to end', () => {
  let lab: Lab;
  let v110: Release;
  let v120: Release;
  let failedRollout = '';

  beforeAll(async () => {
    lab = await startLab('1.0.0', { healthWindowMs: 3000 });
    [v110, v120] = await Promise.all([
      buildRelease(lab.work, '1.1.0', { privateKeyPem: lab.keys.privateKeyPem, dataSchema: 2, patches: { 'appliance/agent/update/migrations.ts': MIGRATION_TO_2 } }),
      buildRelease(lab.work, '1.2.0', {
        privateKeyPem: lab.keys.privateKeyPem,
        dataSchema: 3,
        patches: { 'appliance/agent/update/migrations.ts': MIGRATION_TO_3, 'appliance/ingest/dimse-scp.ts': failingEcho(join(lab.dataDir, 'fail-echo')) },
      }),
    ]);
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('(a) installs a good release, commits it after the health window, and keeps data, config and identity', async () => {
    // Data from before: one real instance over DICOM, a file the migration will change.
    const file = daikonSeries()[1]!;
    const sent = await storescu([file.file], { port: lab.dicomPort, calledAe: 'MBOX' });
    expect(sent.code).toBe(0);
    mkdirSync(join(lab.dataDir, 'notes'), { recursive: true });
    writeFileSync(join(lab.dataDir, 'notes/a.txt'), 'alpha v1');
    const configBefore = readFileSync(lab.configFile, 'utf8');
    const before = await updateInfo(lab);
    expect(before).toMatchObject({ updatable: true, slot: 'a', runningVersion: '1.0.0', trial: null });

    const rolloutId = await rollOut(lab, v110);
    const done = await waitBox(lab, '1.1.0 committed', (i) => i.runningVersion === '1.1.0' && i.status?.phase === 'committed');
    expect(done).toMatchObject({ slot: 'b', trial: null, versions: { a: '1.0.0', b: '1.1.0' }, failed: [] });
    expect(done.status).toMatchObject({ rolloutId, version: '1.1.0', runningVersion: '1.1.0' });
    expect(done.status?.reason).toMatch(/health checks passed: dicom-echo, store, fleet-link/);
    expect(readlinkSync(join(lab.root, 'current'))).toBe('slots/b');
    expect(existsSync(join(lab.root, 'boot/pending'))).toBe(false);
    // The old process ended with the update exit code; the new one ran in slot b on trial.
    expect(lab.box.runs.some((r) => r.code === 75)).toBe(true);
    expect(lab.box.runs.at(-1)?.output).toMatch(/slot b \(1\.1\.0\) on trial: boot 1 of 3/);

    // The fleet saw every phase through to committed, and the box's firmware is the new version.
    const fleet = await waitFleet(lab, 'fleet sees committed', (u) => u.rollout?.boxStatus === 'committed');
    expect(fleet.status).toMatchObject({ phase: 'committed', version: '1.1.0' });
    await waitFleetFirmware(lab, '1.1.0');

    // Data: the instance is still there, the migration ran, the backup is gone after the commit.
    const studies = await (await fetch(`http://127.0.0.1:${lab.httpPort}/api/studies`)).json() as unknown[];
    expect(studies).toHaveLength(1);
    expect(readFileSync(join(lab.dataDir, 'notes/a.txt'), 'utf8')).toBe('alpha v2');
    expect(JSON.parse(readFileSync(join(lab.dataDir, 'schema.json'), 'utf8'))).toEqual({ schema: 2 });
    expect(existsSync(join(lab.dataDir, '.update-backup'))).toBe(false);
    expect(readFileSync(lab.configFile, 'utf8')).toBe(configBefore);
    expect((await fetch(`http://127.0.0.1:${lab.httpPort}/api/agent`).then((r) => r.json()) as { deviceId: string }).deviceId).toBe(lab.deviceId);
  }, 60_000);

  it('(c) rolls back a release whose health check fails, restores its data, and the fleet learns why', async () => {
    writeFileSync(join(lab.dataDir, 'fail-echo'), '');
    const rolloutId = (failedRollout = await rollOut(lab, v120));
    const back = await waitBox(lab, '1.2.0 rolled back', (i) => i.status?.phase === 'rolled-back' && i.runningVersion === '1.1.0');
    expect(back).toMatchObject({ slot: 'b', trial: null });
    expect(back.status).toMatchObject({ rolloutId, version: '1.2.0', runningVersion: '1.1.0', failedVersions: ['1.2.0'] });
    expect(back.status?.reason).toMatch(/^health check failed: DICOM C-ECHO failed: C-ECHO to MBOX@127\.0\.0\.1:\d+ answered status 0x0110$/);
    expect(back.failed).toEqual([{ version: '1.2.0', at: expect.any(String), reason: back.status?.reason }]);
    expect(readlinkSync(join(lab.root, 'current'))).toBe('slots/b');
    expect(existsSync(join(lab.root, 'boot/rolled-back'))).toBe(false);
    // 1.2.0 had migrated the data to schema 3 before its window failed: 1.1.0 put it back.
    expect(JSON.parse(readFileSync(join(lab.dataDir, 'schema.json'), 'utf8'))).toEqual({ schema: 2 });
    expect(readFileSync(join(lab.dataDir, 'notes/a.txt'), 'utf8')).toBe('alpha v2');
    expect(existsSync(join(lab.dataDir, 'extra.json'))).toBe(false);

    const fleet = await waitFleet(lab, 'fleet sees the rollback', (u) => u.rollout?.boxStatus === 'rolled-back');
    expect(fleet.rollout?.reason).toBe(back.status?.reason);
    expect(fleet.failedReleases).toEqual([expect.objectContaining({ version: '1.2.0', state: 'failed', reason: back.status?.reason })]);
    const device = await lab.fleet.api.get<{ events: Array<{ event: string; detail?: string }> }>(`/api/devices/${lab.deviceId}`);
    expect(device.body.events.some((e) => e.event === 'update' && e.detail?.includes('1.2.0 rolled-back'))).toBe(true);
    await waitFleetFirmware(lab, '1.1.0');
  }, 60_000);

  it('(f) never takes the failed release again unless the fleet re-approves it', async () => {
    // The fleet remembers: a new rollout of 1.2.0 skips the box.
    expect((await lab.fleet.api.get<{ state: string }>(`/api/rollouts/${failedRollout}`)).body.state).toBe('paused');
    expect((await lab.fleet.api.post(`/api/rollouts/${failedRollout}/abort`)).status).toBe(200);
    const again = await rollOut(lab, v120);
    const r = await lab.fleet.api.get<{ boxes: Array<{ deviceId: string; status: string }> }>(`/api/rollouts/${again}`);
    expect(r.body.boxes.find((b) => b.deviceId === lab.deviceId)?.status).toBe('skipped');
    await lab.fleet.api.post(`/api/rollouts/${again}/abort`);

    // A fleet that lost its memory (its rollouts and ledger gone) offers it again: the box itself refuses.
    const { httpPort, mqttPort, dataDir } = { httpPort: lab.fleet.httpPort, mqttPort: lab.fleet.mqttPort!, dataDir: lab.fleet.dataDir };
    await lab.fleet.stop();
    await rm(join(dataDir, 'rollouts'), { recursive: true, force: true });
    lab.fleet = await startTestFleet(['--release-pubkeys', lab.keys.publicKeyPath, '--rollout-health-timeout-ms', '300000', '--http-port', String(httpPort), '--mqtt-port', String(mqttPort)], dataDir);
    const forgetful = await rollOut(lab, v120);
    const refused = await waitBox(lab, 'refused on its own memory', (i) => i.status?.phase === 'refused' && i.status.rolloutId === forgetful);
    expect(refused.status?.reason).toMatch(/^failed here before: health check failed: DICOM C-ECHO failed/);
    expect(refused.runningVersion).toBe('1.1.0');
    await waitFleet(lab, 'fleet sees the refusal', (u) => u.rollout?.boxStatus === 'refused');

    // An admin re-approves it for this box (the cause was fixed: the marker is gone): offered with
    // retryApproved, installed, committed.
    await rm(join(lab.dataDir, 'fail-echo'));
    const retry = await lab.fleet.api.post(`/api/rollouts/${forgetful}/devices/${lab.deviceId}/retry`);
    expect(retry.status).toBe(200);
    const ok = await waitBox(lab, '1.2.0 committed after re-approval', (i) => i.runningVersion === '1.2.0' && i.status?.phase === 'committed');
    expect(ok).toMatchObject({ slot: 'a', failed: [] });
    expect(JSON.parse(readFileSync(join(lab.dataDir, 'schema.json'), 'utf8'))).toEqual({ schema: 3 });
    expect((await fleetView(lab)).rollout?.boxStatus).toBe('committed');
  }, 60_000);
});

async function waitFleetFirmware(lab: Lab, version: string): Promise<void> {
  await waitFleet(lab, `fleet lists firmware ${version}`, () => true);
  const { waitUntil } = await import('../helpers/ports.ts');
  await waitUntil(
    async () => (await lab.fleet.api.get<Array<{ id: string; firmware: string | null; online: boolean }>>('/api/devices')).body.some((d) => d.id === lab.deviceId && d.online && d.firmware === version),
    20_000,
    `fleet lists ${lab.deviceId} online with firmware ${version}`,
  );
}
