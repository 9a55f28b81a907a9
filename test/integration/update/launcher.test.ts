// The boot launcher (image-build/launcher/mbox-launch) under dash, the box's /bin/sh, with real
// files: fake slots whose bin/node is a small sh script that records it ran and exits with a
// chosen code, plus one real slot running the repository's CLI on the pinned Node.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_TRIAL_BOOTS, slotPaths, type Slot } from '../../../shared/update/slots.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const LAUNCHER = join(REPO, 'image-build/launcher/mbox-launch');
const DASH = existsSync('/usr/bin/dash') ? '/usr/bin/dash' : '/bin/sh';

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

/** A fresh update root; the parent directory's name has spaces so every test covers quoting. */
function newRoot(): { root: string; log: string } {
  const base = mkdtempSync(join(tmpdir(), 'mbox launch '));
  temps.push(base);
  const root = join(base, 'update root');
  mkdirSync(join(root, 'slots'), { recursive: true });
  mkdirSync(join(root, 'boot'));
  return { root, log: join(base, 'ran.log') };
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** A slot whose "node" appends one line per run to `log` and exits with `code`. */
function fakeSlot(root: string, slot: Slot, log: string, code = 0): void {
  const dir = join(root, 'slots', slot);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'shared/cli'), { recursive: true });
  writeFileSync(join(dir, 'shared/cli/main.ts'), '// stand-in\n');
  const script = [
    '#!/bin/sh',
    `printf '%s|%s|%s|%s\\n' "${slot}" "$MBOX_SLOT" "$MBOX_UPDATE_ROOT" "$*" >> ${shq(log)}`,
    `exit ${code}`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'bin/node'), script, { mode: 0o755 });
}

function point(root: string, target: string): void {
  rmSync(join(root, 'current'), { force: true });
  symlinkSync(target, join(root, 'current'));
}

function launch(root: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  // A bare environment, as systemd gives: the launcher must not lean on anything else.
  const r = spawnSync(DASH, [LAUNCHER, root, ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Run {
  binary: string;
  slot: string;
  root: string;
  args: string;
}
function runs(log: string): Run[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [binary = '', slot = '', root = '', args = ''] = line.split('|');
      return { binary, slot, root, args };
    });
}

const read = (p: string): string => readFileSync(p, 'utf8').trim();

describe('mbox-launch', () => {
  it('runs the current slot with default args, its env and its exit code', () => {
    const { root, log } = newRoot();
    fakeSlot(root, 'a', log, 7);
    fakeSlot(root, 'b', log);
    point(root, 'slots/a');
    const r = launch(root);
    expect(r.status).toBe(7);
    expect(r.stderr).toBe('');
    const main = join(root, 'slots/a/shared/cli/main.ts');
    expect(runs(log)).toEqual([{ binary: 'a', slot: 'a', root, args: `${main} appliance` }]);

    expect(launch(root, 'appliance', '--config', '/etc/mbox/box.json').status).toBe(7);
    expect(runs(log)[1]?.args).toBe(`${main} appliance --config /etc/mbox/box.json`);
  });

  it('counts trial boots, rolls a crash loop back on the boot after the last trial, and records why', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    fakeSlot(root, 'b', log, 1); // the new release crashes at once
    point(root, 'slots/b');
    writeFileSync(p.pending, 'b 1.2.0 0\n');

    for (let boot = 1; boot <= MAX_TRIAL_BOOTS; boot++) {
      const r = launch(root);
      expect(r.status).toBe(1);
      expect(read(p.pending)).toBe(`b 1.2.0 ${boot}`);
      expect(r.stderr).toContain(`boot ${boot} of ${MAX_TRIAL_BOOTS}`);
    }
    expect(runs(log).map((x) => x.binary)).toEqual(['b', 'b', 'b']);

    const r = launch(root);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/rolled back from slot b \(1\.2\.0\) to slot a/);
    expect(readlinkSync(p.current)).toBe('slots/a');
    expect(existsSync(p.pending)).toBe(false);
    expect(read(p.rolledBack)).toBe(`1.2.0 crash loop: ${MAX_TRIAL_BOOTS + 1} boots without a health commit`);
    expect(runs(log).at(-1)).toMatchObject({ binary: 'a', slot: 'a' });

    // Back on the old slot there is nothing left to count.
    expect(launch(root).stderr).toBe('');
    expect(runs(log).map((x) => x.binary)).toEqual(['b', 'b', 'b', 'a', 'a']);
  });

  it('leaves a committed trial alone and keeps counting from whatever count the updater wrote', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    fakeSlot(root, 'b', log);
    point(root, 'slots/b');
    writeFileSync(p.pending, 'b 2.0.0 2\n');
    launch(root);
    expect(read(p.pending)).toBe('b 2.0.0 3');
    rmSync(p.pending); // the app's health window passed: commit
    launch(root);
    expect(existsSync(p.pending)).toBe(false);
    expect(readlinkSync(p.current)).toBe('slots/b');
  });

  it('stays on a crash-looping trial slot when the other slot cannot run', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'b', log, 1);
    point(root, 'slots/b');
    writeFileSync(p.pending, `b 1.2.0 ${MAX_TRIAL_BOOTS}\n`);
    const r = launch(root);
    expect(r.stderr).toMatch(/slot a is not runnable; staying/);
    expect(readlinkSync(p.current)).toBe('slots/b');
    expect(existsSync(p.rolledBack)).toBe(false);
    expect(runs(log).map((x) => x.binary)).toEqual(['b']);
  });

  it('falls back to the other slot when current is dangling, missing or half-installed, and repairs it', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    point(root, 'slots/b'); // b does not exist
    let r = launch(root);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/slot b has no bin\/node.*\n.*falling back to slot a/);
    expect(readlinkSync(p.current)).toBe('slots/a');

    rmSync(p.current);
    r = launch(root);
    expect(r.stderr).toMatch(/current is missing\n.*falling back to slot a/);
    expect(readlinkSync(p.current)).toBe('slots/a');

    // b half-installed (a killed install left no bin/node), current already switched to it.
    mkdirSync(join(root, 'slots/b/shared/cli'), { recursive: true });
    point(root, 'slots/b');
    r = launch(root);
    expect(r.stderr).toContain('falling back to slot a');
    expect(runs(log).map((x) => `${x.binary}${x.slot}`)).toEqual(['aa', 'aa', 'aa']);

    point(root, 'somewhere/else');
    expect(launch(root).stderr).toMatch(/not slots\/a or slots\/b/);
    expect(readlinkSync(p.current)).toBe('slots/a');
  });

  it('accepts an absolute current and fails clearly when no slot can run', () => {
    const { root, log } = newRoot();
    fakeSlot(root, 'b', log);
    point(root, join(root, 'slots/b'));
    expect(launch(root).stderr).toBe('');
    expect(runs(log)[0]?.slot).toBe('b');

    rmSync(join(root, 'slots/b'), { recursive: true });
    const r = launch(root);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no runnable slot/);
  });

  it('removes a stale pending that names the slot not running', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    fakeSlot(root, 'b', log);
    point(root, 'slots/a');
    writeFileSync(p.pending, 'b 3.0.0 1\n');
    const r = launch(root);
    expect(r.stderr).toMatch(/removing stale boot\/pending for slot b/);
    expect(existsSync(p.pending)).toBe(false);
    expect(runs(log).map((x) => x.binary)).toEqual(['a']);
  });

  it('counts an unreadable pending as a trial of the running slot so a crash loop still ends', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    fakeSlot(root, 'b', log);
    point(root, 'slots/b');
    writeFileSync(p.pending, 'garbage\n');
    expect(launch(root).stderr).toMatch(/unreadable/);
    expect(read(p.pending)).toBe('b unknown 1');
  });

  it('--cli runs the current slot without counting boots or repairing', () => {
    const { root, log } = newRoot();
    const p = slotPaths(root);
    fakeSlot(root, 'a', log);
    fakeSlot(root, 'b', log);
    point(root, 'slots/b');
    writeFileSync(p.pending, 'b 1.2.0 3\n');
    const r = spawnSync(DASH, [LAUNCHER, '--cli', root, 'status'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(read(p.pending)).toBe('b 1.2.0 3');
    expect(runs(log)[0]?.args).toMatch(/main\.ts status$/);
  });

  it('runs a real slot: the pinned Node and the repository CLI print the slot version', () => {
    const { root } = newRoot();
    const slot = join(root, 'slots/a');
    mkdirSync(join(slot, 'bin'), { recursive: true });
    symlinkSync(join(REPO, '.node/bin/node'), join(slot, 'bin/node'));
    cpSync(join(REPO, 'shared'), join(slot, 'shared'), { recursive: true });
    symlinkSync(join(REPO, 'node_modules'), join(slot, 'node_modules'));
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(slot, 'package.json'), JSON.stringify({ ...pkg, version: '9.8.7-slot' }));
    point(root, 'slots/a');
    const r = launch(root, '--version');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('9.8.7-slot');
  });
});
