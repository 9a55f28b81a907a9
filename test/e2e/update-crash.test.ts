// Updates against crashes, on real processes (the launcher under a supervisor that restarts it
// like systemd, a real fleet rolling the releases out):
//   (d) a release whose process dies at once: the launcher counts its trial boots, switches back
//       after MAX_TRIAL_BOOTS, and the old slot reports 'crash loop' to the fleet;
//   (e) the box SIGKILLed at seeded moments in each stage — mid-download, mid-extract, at the
//       switch, in the health window — comes back on a working slot every time, resumes the
//       download where it stopped, and the update completes.
// MBOX_UPDATE_CRASH_SEED=<n> replays a run's kill delays.
import { existsSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TRIAL_BOOTS } from '../../shared/update/slots.ts';
import { prng, seedFromEnv } from '../helpers/crash.ts';
import { buildRelease, rollOut, startLab, tail, updateInfo, waitBox, waitFleet, type Lab } from '../integration/update/updater-harness.ts';

describe('updates against crashes', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab('1.0.0', { healthWindowMs: 3000 });
  }, 60_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('(d) a crash-looping release is rolled back by the launcher and reported as a crash loop', async () => {
    const crashing = await buildRelease(lab.work, '1.4.0', {
      privateKeyPem: lab.keys.privateKeyPem,
      patches: { 'shared/cli/main.ts': "process.stderr.write('1.4.0 dies at once\\n');\nprocess.exit(3);\n" },
    });
    const runsBefore = lab.box.runs.length;
    const rolloutId = await rollOut(lab, crashing);
    const back = await waitBox(lab, 'crash loop rolled back', (i) => i.status?.phase === 'rolled-back' && i.status.version === '1.4.0');
    expect(back).toMatchObject({ runningVersion: '1.0.0', slot: 'a', failed: [expect.objectContaining({ version: '1.4.0' })] });
    expect(back.status).toMatchObject({ rolloutId, reason: `crash loop: ${MAX_TRIAL_BOOTS + 1} boots without a health commit` });
    // The update's exit, three trial boots that died, then the old slot.
    const runs = lab.box.runs.slice(runsBefore - 1);
    expect(runs[0]?.code).toBe(75);
    expect(runs.slice(1, 1 + MAX_TRIAL_BOOTS).map((r) => r.code)).toEqual(Array(MAX_TRIAL_BOOTS).fill(3));
    expect(runs[1 + MAX_TRIAL_BOOTS]?.output).toMatch(/rolled back from slot b \(1\.4\.0\) to slot a: crash loop/);
    expect(readlinkSync(join(lab.root, 'current'))).toBe('slots/a');
    expect(existsSync(join(lab.root, 'boot/pending'))).toBe(false);

    const fleet = await waitFleet(lab, 'fleet sees the crash loop', (u) => u.rollout?.boxStatus === 'rolled-back');
    expect(fleet.rollout?.reason).toMatch(/^crash loop: /);
    expect(fleet.failedReleases.map((f) => f.version)).toEqual(['1.4.0']);
    await lab.fleet.api.post(`/api/rollouts/${rolloutId}/abort`);
  }, 60_000);

  it('(c) a release that cannot open its DICOM port rolls back at its first start, not after a crash loop', async () => {
    const portless = await buildRelease(lab.work, '1.6.0', {
      privateKeyPem: lab.keys.privateKeyPem,
      // Listens on an address this host does not have (TEST-NET-1): EADDRNOTAVAIL at start.
      patches: { 'appliance/ingest/dimse-server.ts': (src) => src.replace('host: this.cfg.dicomHost }', "host: '192.0.2.1' }") },
    });
    const runsBefore = lab.box.runs.length;
    const rolloutId = await rollOut(lab, portless);
    const back = await waitBox(lab, '1.6.0 rolled back', (i) => i.status?.phase === 'rolled-back' && i.status.version === '1.6.0');
    expect(back.status).toMatchObject({ rolloutId, runningVersion: '1.0.0' });
    expect(back.status?.reason).toMatch(/^start failed: .*EADDRNOTAVAIL.*192\.0\.2\.1/);
    // One trial boot, not MAX_TRIAL_BOOTS: the app rolled itself back.
    const runs = lab.box.runs.slice(runsBefore);
    expect(runs.filter((r) => /slot b \(1\.6\.0\) on trial/.test(r.output))).toHaveLength(1);
    expect(back.failed.map((f) => f.version)).toEqual(['1.4.0', '1.6.0']);
    await waitFleet(lab, 'fleet sees the failed start', (u) => u.rollout?.boxStatus === 'rolled-back' && /^start failed/.test(u.rollout.reason ?? ''));
    await lab.fleet.api.post(`/api/rollouts/${rolloutId}/abort`);
  }, 60_000);

  it('(e) SIGKILL in every stage of an update: back on a working slot each time, and the update completes', async () => {
    const seed = seedFromEnv('MBOX_UPDATE_CRASH_SEED');
    const rand = prng(seed);
    const note = `seed ${seed} (MBOX_UPDATE_CRASH_SEED)`;
    // 24 MB of incompressible padding: long enough to be cut mid-download and mid-extract.
    const rel = await buildRelease(lab.work, '1.5.0', { privateKeyPem: lab.keys.privateKeyPem, padBytes: 24 << 20 });
    const part = join(lab.root, 'downloads/1.5.0.mbx.part');
    const extracting = join(lab.root, 'slots/.b.partial');
    const pending = join(lab.root, 'boot/pending');
    const kills: string[] = [];

    /** Polls for `ready`, waits a seeded 0-`jitterMs`, then SIGKILLs the box; false when the moment passed unseen. */
    const killWhen = async (stage: string, ready: () => boolean, jitterMs: number, timeoutMs = 20_000): Promise<boolean> => {
      const deadline = Date.now() + timeoutMs;
      while (!ready()) {
        if (Date.now() > deadline) return false;
        await sleep(2);
      }
      await sleep(Math.floor(rand() * jitterMs));
      const pid = lab.box.pid;
      await lab.box.kill('SIGKILL');
      kills.push(`${stage} (pid ${pid})`);
      return true;
    };
    /** After each kill: the supervisor's next run answers on a slot that can run, or the test fails. */
    const backUp = async (): Promise<void> => {
      const info = await waitBox(lab, `box back after kill ${kills.length} (${note})`, () => true, 30_000);
      const slot = readlinkSync(join(lab.root, 'current')).replace('slots/', '');
      expect(existsSync(join(lab.root, 'slots', slot, 'bin/node')), note).toBe(true);
      expect(['1.0.0', '1.5.0'], note).toContain(info.runningVersion);
    };

    const rolloutId = await rollOut(lab, rel);

    // 1. Mid-download: some bytes of the part are on disk.
    expect(await killWhen('download', () => existsSync(part) && statSync(part).size > 0, 30), `${note}: never saw the download`).toBe(true);
    const kept = existsSync(part) ? statSync(part).size : 0;
    await backUp();

    // 2. Mid-extract into the inactive slot.
    expect(await killWhen('extract', () => existsSync(extracting), 40), `${note}: never saw the extraction\n${tail(lab)}`).toBe(true);
    expect(readlinkSync(join(lab.root, 'current')), note).toBe('slots/a');
    await backUp();

    // 3. At the switch: pending written, current maybe switched.
    expect(await killWhen('switch', () => existsSync(pending), 3), `${note}: never saw the switch\n${tail(lab)}`).toBe(true);
    await backUp();

    // 4. In the health window of the new slot (if the switch had happened before kill 3, this is
    //    its second trial boot; if not, the install ran once more first).
    expect(await killWhen('health window', () => lab.box.latest?.output.includes('health window started') === true, 1000, 40_000), `${note}: never saw the health window\n${tail(lab)}`).toBe(true);
    await backUp();

    const done = await waitBox(lab, `1.5.0 committed after ${kills.join(', ')} (${note})`, (i) => i.runningVersion === '1.5.0' && i.status?.phase === 'committed', 45_000);
    expect(done, note).toMatchObject({ slot: 'b', trial: null, versions: { a: '1.0.0', b: '1.5.0' } });
    expect(done.status?.rolloutId).toBe(rolloutId);
    expect(readdirSync(join(lab.root, 'downloads')), note).toEqual([]);
    expect(existsSync(pending), note).toBe(false);

    // The download after kill 1 went on from the kept part instead of starting over.
    const log = lab.box.runs.map((r) => r.output).join('\n');
    const resumed = [...log.matchAll(/"resumedFrom":(\d+)[^\n]*bundle downloaded/g)].map((m) => Number(m[1]));
    if (kept > 0) expect(resumed.some((r) => r > 0), `${note}: kept ${kept} bytes but no resumed download in ${JSON.stringify(resumed)}`).toBe(true);
    await waitFleet(lab, 'fleet sees 1.5.0 committed', (u) => u.rollout?.boxStatus === 'committed');
    process.stdout.write(`update-crash (e): ${note}; kills: ${kills.join(', ')}; kept ${kept} bytes, resumed from ${resumed.join(',')}\n`);
    expect((await updateInfo(lab)).runningVersion).toBe('1.5.0');
  }, 60_000);
});
