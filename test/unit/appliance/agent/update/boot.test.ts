// What a start makes of the slot root (real files in a temp root; no processes).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_INTERRUPTED_INSTALLS, prepareBoot, type BootInput } from '../../../../../appliance/agent/update/boot.ts';
import { locateSlot, NOT_UPDATABLE } from '../../../../../appliance/agent/update/context.ts';
import { parsePending, parseRolledBack, SlotFiles } from '../../../../../appliance/agent/update/slot-files.ts';
import { createLogger } from '../../../../../shared/log.ts';
import type { SlotState } from '../../../../../shared/update/slots.ts';

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

function root(): { files: SlotFiles; dataDir: string } {
  const base = mkdtempSync(join(tmpdir(), 'mbox-boot-'));
  temps.push(base);
  const r = join(base, 'root');
  mkdirSync(join(r, 'slots/a'), { recursive: true });
  mkdirSync(join(r, 'slots/b'), { recursive: true });
  mkdirSync(join(r, 'boot'));
  symlinkSync('slots/a', join(r, 'current'));
  mkdirSync(join(base, 'data'));
  return { files: new SlotFiles(r), dataDir: join(base, 'data') };
}

const input = (files: SlotFiles, dataDir: string, over: Partial<BootInput> = {}): BootInput => ({
  files,
  slot: 'a',
  runningVersion: '1.0.0',
  dataDir,
  migrations: { list: [], base: 1, target: 1 },
  log: createLogger('silent'),
  ...over,
});

const state = (files: SlotFiles): SlotState => JSON.parse(readFileSync(files.paths.state, 'utf8')) as SlotState;

describe('slot files', () => {
  it('parses what the launcher writes', () => {
    expect(parsePending('b 1.2.0 3\n')).toEqual({ slot: 'b', version: '1.2.0', boots: 3 });
    expect(parsePending('b 1.2.0\n')).toEqual({ slot: 'b', version: '1.2.0', boots: 0 });
    expect(parsePending('garbage')).toBeUndefined();
    expect(parseRolledBack('1.2.0 crash loop: 4 boots without a health commit\n')).toEqual({ version: '1.2.0', reason: 'crash loop: 4 boots without a health commit' });
    expect(parseRolledBack('1.2.0')).toEqual({ version: '1.2.0', reason: 'rolled back (no reason given)' });
  });

  it('switches current by renaming a relative symlink over it', async () => {
    const { files } = root();
    expect(await files.currentSlot()).toBe('a');
    await files.pointCurrent('b');
    expect(readlinkSync(files.paths.current)).toBe('slots/b');
    expect(await files.currentSlot()).toBe('b');
  });

  it('is updatable only when the code runs from a slot of the root', () => {
    const { files } = root();
    expect(locateSlot(undefined)).toEqual({ updatable: false, reason: NOT_UPDATABLE });
    expect(locateSlot(files.root, join(files.root, 'slots/b'))).toMatchObject({ updatable: true, slot: 'b' });
    const elsewhere = locateSlot(files.root, '/usr/lib');
    expect(elsewhere.updatable).toBe(false);
    expect(elsewhere.updatable ? '' : elsewhere.reason).toMatch(/^not updatable: not running from an A\/B slot \(/);
  });
});

describe('prepareBoot', () => {
  it('starts a fresh root idle, with the running version recorded for its slot', async () => {
    const { files, dataDir } = root();
    const f = await prepareBoot(input(files, dataDir));
    expect(f.trial).toBeUndefined();
    expect(f.status).toBeUndefined();
    expect(state(files)).toEqual({ versions: { a: '1.0.0', b: null }, failed: [], inFlight: null });
  });

  it('records a rollback note as a failure of that release, reports it once and removes the note', async () => {
    const { files, dataDir } = root();
    await files.writeState({ versions: { a: '1.0.0', b: '1.1.0' }, failed: [], inFlight: { rolloutId: 'ro-9', version: '1.1.0', slot: 'b' } });
    writeFileSync(files.paths.rolledBack, '1.1.0 crash loop: 4 boots without a health commit\n');
    const f = await prepareBoot(input(files, dataDir));
    expect(f.status).toEqual({ rolloutId: 'ro-9', version: '1.1.0', phase: 'rolled-back', reason: 'crash loop: 4 boots without a health commit' });
    expect(state(files).failed).toEqual([{ version: '1.1.0', at: expect.any(String), reason: 'crash loop: 4 boots without a health commit' }]);
    expect(state(files).inFlight).toBeNull();
    expect(existsSync(files.paths.rolledBack)).toBe(false);
    // Read once: the next start has nothing new to report.
    expect((await prepareBoot(input(files, dataDir))).status).toBeUndefined();
    expect(state(files).failed).toHaveLength(1);
  });

  it('finds its own trial, and drops a pending that names the other slot', async () => {
    const { files, dataDir } = root();
    await files.writeState({ versions: { a: '1.0.0', b: '1.1.0' }, failed: [], inFlight: { rolloutId: 'ro-1', version: '1.1.0', slot: 'b' } });
    writeFileSync(files.paths.pending, 'b 1.1.0 1\n');
    const f = await prepareBoot(input(files, dataDir, { slot: 'b', runningVersion: '1.1.0' }));
    expect(f.trial).toEqual({ slot: 'b', version: '1.1.0', rolloutId: 'ro-1', boots: 1 });
    expect(f.status).toMatchObject({ phase: 'health-check', version: '1.1.0', rolloutId: 'ro-1' });

    const g = await prepareBoot(input(files, dataDir, { slot: 'a' }));
    expect(g.trial).toBeUndefined();
    expect(existsSync(files.paths.pending)).toBe(false);
  });

  it('finishes a commit that a crash cut between removing pending and recording it', async () => {
    const { files, dataDir } = root();
    await files.writeState({ versions: { a: '1.0.0', b: null }, failed: [{ version: '1.1.0', at: 't', reason: 'before' }], inFlight: { rolloutId: 'ro-2', version: '1.1.0', slot: 'b' } });
    const f = await prepareBoot(input(files, dataDir, { slot: 'b', runningVersion: '1.1.0' }));
    expect(f.status).toEqual({ rolloutId: 'ro-2', version: '1.1.0', phase: 'committed' });
    expect(state(files)).toMatchObject({ versions: { a: '1.0.0', b: '1.1.0' }, inFlight: null });
  });

  it('discards an interrupted install so the retained offer retries it, and reports it failed after repeated interruptions', async () => {
    const { files, dataDir } = root();
    for (let i = 1; i <= MAX_INTERRUPTED_INSTALLS; i++) {
      await files.writeState({ versions: { a: '1.0.0', b: '1.1.0' }, failed: [], inFlight: { rolloutId: 'ro-3', version: '1.1.0', slot: 'b' } });
      const f = await prepareBoot(input(files, dataDir));
      expect(state(files).inFlight).toBeNull();
      expect(state(files).versions.b).toBeNull();
      if (i < MAX_INTERRUPTED_INSTALLS) expect(f.status).toBeUndefined();
      else {
        expect(f.status).toMatchObject({ phase: 'failed', version: '1.1.0', reason: `install interrupted ${MAX_INTERRUPTED_INSTALLS} times (restarts during install); not retried` });
        expect(state(files).failed.map((x) => x.version)).toEqual(['1.1.0']);
      }
    }
  });
});
