// The real release, end to end on this machine's arch: stage (npm ci for the box, the registry's
// Node), build, extract into a slot, then run the box from the slot alone — its own Node, its own
// node_modules, no checkout — and answer a C-ECHO. Needs the npm registry and takes minutes on a
// cold cache, so it runs only with MBOX_BUNDLE_RELEASE_TEST=1 (`npm run bench bundle` stages the
// arm64 release the same way).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, extractBundle, initKeys, releaseCreatedAt, releaseNodeVersion, releaseVersion, stageReleaseDetailed } from '../../../image-build/bundle/index.ts';
import { REPO_ROOT } from '../../../image-build/bundle/release-info.ts';
import { echoscu } from '../../helpers/dcmtk.ts';
import { earlyExitError, freePort, spawnPeer, waitForPort, type PeerProcess } from '../../helpers/ports.ts';

const enabled = process.env.MBOX_BUNDLE_RELEASE_TEST === '1';
const arch = process.arch === 'arm64' ? 'arm64' : 'x64';
let dir: string | undefined;
let box: PeerProcess | undefined;

afterAll(async () => {
  await box?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!enabled)(`the real ${arch} release`, () => {
  it('stages, builds, extracts and runs from the slot alone', { timeout: 600_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'mbox-release-'));
    const keys = await initKeys(join(dir, 'keys'));
    const detail = await stageReleaseDetailed({ arch, nodeVersion: releaseNodeVersion(), outDir: join(dir, 'stage'), cacheDir: join(REPO_ROOT, '.cache', 'bundle') });
    expect(detail.native.filter((n) => n.status === 'needs-compile')).toEqual([]);
    const bundle = join(dir, 'release.mbx');
    await buildBundle({ stageDir: join(dir, 'stage'), out: bundle, version: releaseVersion(), arch, nodeVersion: releaseNodeVersion(), createdAt: releaseCreatedAt(), dataSchema: 1, privateKeyPem: await readFile(keys.privateKeyPath, 'utf8') });
    const slot = join(dir, 'slots', 'a');
    await extractBundle(bundle, slot, [await readFile(keys.publicKeyPath, 'utf8')], { arch });

    const [dicomPort, httpPort] = [await freePort(), await freePort()];
    // A bare environment: nothing from the checkout or this Node leaks into the slot's run.
    box = spawnPeer(join(slot, 'bin', 'node'), [join(slot, 'shared', 'cli', 'main.ts'), 'appliance', '--data-dir', join(dir, 'data'), '--dicom-port', String(dicomPort), '--http-port', String(httpPort), '--http-host', '127.0.0.1'], { cwd: dir, env: { PATH: '/usr/bin:/bin', HOME: dir } });
    await waitForPort(httpPort, 60_000, () => earlyExitError('box from the slot', box!));
    const health = (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { status: string };
    expect(health.status).toBe('ok');
    await waitForPort(dicomPort, 10_000);
    const echo = await echoscu({ port: dicomPort, calledAe: 'MBOX' });
    expect(echo.code, echo.stderr).toBe(0);
  });
});
