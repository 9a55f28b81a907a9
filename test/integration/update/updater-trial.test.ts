// The updater's trial logic in one process, on a real slot root: the health window's verdicts
// (commit, roll back, nowhere to roll back to, interrupted by a stop) and an offer that arrives
// during the window, looked at again once it is over. The probe is a stand-in here; the real one
// (C-ECHO, store, fleet link) is proven in test/e2e/update*.test.ts.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthProbe } from '../../../appliance/agent/update/health.ts';
import type { Migration } from '../../../appliance/agent/update/schema.ts';
import { Updater } from '../../../appliance/agent/update/updater.ts';
import { ApplianceConfigSchema } from '../../../shared/config/appliance.ts';
import { loadConfig } from '../../../shared/config/load.ts';
import { createLogger } from '../../../shared/log.ts';
import type { UpdateStatus } from '../../../shared/update/messages.ts';
import { waitUntil } from '../../helpers/ports.ts';

const temps: string[] = [];
const updaters: Updater[] = [];
afterEach(async () => {
  for (const u of updaters.splice(0)) await u.stop();
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

/** A root whose slot b (1.1.0) is on trial after an update from slot a (1.0.0). */
function trialRoot(opts: { oldSlotRunnable?: boolean } = {}): { root: string; dataDir: string } {
  const base = mkdtempSync(join(tmpdir(), 'mbox-trial-'));
  temps.push(base);
  const root = join(base, 'root');
  for (const s of ['a', 'b']) {
    if (s === 'a' && opts.oldSlotRunnable === false) continue;
    mkdirSync(join(root, 'slots', s, 'bin'), { recursive: true });
    mkdirSync(join(root, 'slots', s, 'shared/cli'), { recursive: true });
    writeFileSync(join(root, 'slots', s, 'bin/node'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(root, 'slots', s, 'shared/cli/main.ts'), '');
  }
  mkdirSync(join(root, 'boot'));
  symlinkSync('slots/b', join(root, 'current'));
  writeFileSync(join(root, 'boot/pending'), 'b 1.1.0 1\n');
  writeFileSync(join(root, 'state.json'), JSON.stringify({ versions: { a: '1.0.0', b: '1.1.0' }, failed: [], inFlight: { rolloutId: 'ro-1', version: '1.1.0', slot: 'b' } }));
  const dataDir = join(base, 'data');
  mkdirSync(dataDir);
  return { root, dataDir };
}

interface OpenAs {
  slot?: 'a' | 'b';
  version?: string;
  migrations?: { list: readonly Migration[]; base: number; target: number };
}

async function open(root: string, dataDir: string, restarts: string[], linkUp = true, as: OpenAs = {}): Promise<{ u: Updater; sent: UpdateStatus[] }> {
  const config = loadConfig(ApplianceConfigSchema, { argv: ['--data-dir', dataDir, '--update-health-window-ms', '1000', '--update-root', root] });
  const u = await Updater.prepare({
    config,
    dataDir,
    log: createLogger('silent'),
    runningVersion: as.version ?? '1.1.0',
    restart: async (why) => void restarts.push(why),
    options: { context: { updatable: true, root, slot: as.slot ?? 'b' }, progressIntervalMs: 0, ...(as.migrations ? { migrations: as.migrations } : {}) },
  });
  updaters.push(u);
  const sent: UpdateStatus[] = [];
  u.attachFleet({ publishStatus: async (s) => void sent.push(s), tls: () => undefined, connected: () => true });
  if (linkUp) u.onConnected();
  return { u, sent };
}

const probe = (over: Partial<HealthProbe> = {}): HealthProbe => ({ echo: async () => undefined, store: async () => undefined, fleetSeen: () => true, fleetConfigured: true, ...over });

describe('the updater on a trial', () => {
  it('commits after a healthy window, then acts on the offer that came during it', async () => {
    const { root, dataDir } = trialRoot();
    const restarts: string[] = [];
    const { u, sent } = await open(root, dataDir, restarts);
    expect(u.info().trial).toEqual({ version: '1.1.0', boots: 1, windowMs: 1000 });
    u.started(probe());
    // A newer release is offered while the window runs: not now …
    u.onOffer({ rolloutId: 'ro-2', version: '1.2.0', url: 'https://127.0.0.1:1/x', sha256: 'a'.repeat(64), size: 10, retryApproved: false, offeredAt: new Date().toISOString() });
    expect(u.status?.phase).toBe('health-check');
    await waitUntil(async () => u.status?.phase !== 'health-check', 5000, 'window over');
    expect(sent.some((s) => s.phase === 'committed' && s.version === '1.1.0' && s.rolloutId === 'ro-1')).toBe(true);
    expect(existsSync(join(root, 'boot/pending'))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, 'state.json'), 'utf8'))).toMatchObject({ versions: { a: '1.0.0', b: '1.1.0' }, inFlight: null });
    // … but right after the commit (this box has no identity here, so the download fails at once).
    await waitUntil(async () => u.status?.rolloutId === 'ro-2' && u.status.phase === 'failed', 5000, 'deferred offer taken up');
    expect(u.status?.reason).toMatch(/no device identity/);
    expect(restarts).toEqual([]);
  });

  it('rolls back when a check fails: note, switch, pending removed, restart', async () => {
    const { root, dataDir } = trialRoot();
    const restarts: string[] = [];
    const { u } = await open(root, dataDir, restarts);
    u.started(probe({ store: async () => Promise.reject(new Error('LevelDB would not answer')) }));
    await waitUntil(async () => restarts.length > 0, 8000, 'restart');
    expect(restarts[0]).toBe('rollback of 1.1.0: health check failed: store does not answer: LevelDB would not answer');
    expect(readFileSync(join(root, 'boot/rolled-back'), 'utf8')).toBe('1.1.0 health check failed: store does not answer: LevelDB would not answer\n');
    expect(readlinkSync(join(root, 'current'))).toBe('slots/a');
    expect(existsSync(join(root, 'boot/pending'))).toBe(false);
  });

  it('fails the window when the fleet was never reached', async () => {
    const { root, dataDir } = trialRoot();
    const restarts: string[] = [];
    const { u } = await open(root, dataDir, restarts, false);
    u.started(probe({ fleetSeen: () => false }));
    await waitUntil(async () => restarts.length > 0, 5000, 'restart');
    expect(restarts[0]).toMatch(/the fleet was not reachable within the 1 s health window/);
  });

  it('stays (and says so) when there is no slot to roll back to', async () => {
    const { root, dataDir } = trialRoot({ oldSlotRunnable: false });
    const restarts: string[] = [];
    const { u } = await open(root, dataDir, restarts);
    u.started(probe({ echo: async () => Promise.reject(new Error('refused')) }));
    await waitUntil(async () => u.status?.phase === 'failed', 8000, 'failed');
    expect(u.status?.reason).toMatch(/; no slot to roll back to$/);
    expect(restarts).toEqual([]);
    expect(readlinkSync(join(root, 'current'))).toBe('slots/b');
    expect(existsSync(join(root, 'boot/pending'))).toBe(true);
  });

  it('neither commits nor rolls back when the box stops during the window', async () => {
    const { root, dataDir } = trialRoot();
    const restarts: string[] = [];
    const { u } = await open(root, dataDir, restarts);
    u.started(probe());
    await u.stop();
    await new Promise((r) => setTimeout(r, 1500));
    expect(restarts).toEqual([]);
    expect(readFileSync(join(root, 'boot/pending'), 'utf8')).toBe('b 1.1.0 1\n');
    expect(existsSync(join(root, 'boot/rolled-back'))).toBe(false);
  });

  it('rolls back a release whose data migration fails: data untouched, old slot reports why and refuses it', async () => {
    const { root, dataDir } = trialRoot();
    writeFileSync(join(dataDir, 'index.json'), '{"v":1}');
    const breaking: Migration = {
      to: 2,
      description: 'split the study index',
      touches: ['index.json'],
      up: async (dir) => {
        writeFileSync(join(dir, 'index.json'), '{"v":2,"half":');
        throw new Error('no space left on device');
      },
    };
    const restarts: string[] = [];
    await expect(open(root, dataDir, restarts, true, { migrations: { list: [breaking], base: 1, target: 2 } })).rejects.toThrow(
      /data migration to schema 2 \(split the study index\) failed: no space left on device/,
    );
    // Undone, and the slot switched back before the process ends (systemd then starts slot a).
    expect(readFileSync(join(dataDir, 'index.json'), 'utf8')).toBe('{"v":1}');
    expect(readlinkSync(join(root, 'current'))).toBe('slots/a');
    expect(existsSync(join(root, 'boot/pending'))).toBe(false);
    expect(readFileSync(join(root, 'boot/rolled-back'), 'utf8')).toMatch(/^1\.1\.0 .*no space left on device\n$/);

    // The old release starts: it tells the fleet, and remembers the release as failed on this box.
    const { u, sent } = await open(root, dataDir, restarts, true, { slot: 'a', version: '1.0.0' });
    await waitUntil(async () => sent.some((m) => m.phase === 'rolled-back'), 5000, 'rolled-back reported');
    expect(sent.find((m) => m.phase === 'rolled-back')).toMatchObject({ rolloutId: 'ro-1', version: '1.1.0', reason: expect.stringMatching(/no space left on device/) });
    expect(u.info().failed.map((f) => f.version)).toEqual(['1.1.0']);
    expect(readFileSync(join(dataDir, 'index.json'), 'utf8')).toBe('{"v":1}');
    expect(restarts).toEqual([]);
  });
});
