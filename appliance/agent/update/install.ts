// Verify, then install into the inactive slot. The bundle is verified in full before the slot is
// touched (a refused bundle leaves both slots as they were), then extracted — which verifies again
// while it writes, so a file swapped in between is refused too — into a slot wiped first.
import { access, constants, readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { extractBundle } from '../../../image-build/bundle/extract.ts';
import { verifyBundle } from '../../../image-build/bundle/verify.ts';
import { BundleError, type BundleManifest } from '../../../shared/update/manifest.ts';
import { fsyncPath } from '../../../shared/storage/fsync.ts';

/** A bundle the box will not install; `code` is a BundleError code or one of the box's own. */
export class InstallRefusal extends Error {
  override name = 'InstallRefusal';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export type BoxArch = 'arm64' | 'x64';

export function boxArch(arch: string = process.arch): BoxArch | undefined {
  return arch === 'arm64' || arch === 'x64' ? arch : undefined;
}

/**
 * The pinned release keys' PEM texts from config updatePubkeys: each entry a PEM file, or a
 * directory whose *.pem files are all pinned (the image puts them in /usr/share/mbox/keys).
 */
export async function loadPinnedKeys(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      throw new InstallRefusal('no-keys', `pinned key ${p} cannot be read: ${(err as Error).message}`);
    }
    const files = st.isDirectory() ? (await readdir(p)).filter((n) => n.endsWith('.pem')).sort().map((n) => join(p, n)) : [p];
    for (const f of files) out.push(await readFile(f, 'utf8'));
  }
  if (out.length === 0) throw new InstallRefusal('no-keys', 'no release keys are pinned on this box (config updatePubkeys): nothing can be verified');
  return out;
}

function refusalOf(err: unknown): InstallRefusal | undefined {
  if (err instanceof BundleError) return new InstallRefusal(err.code, err.message);
  if (err instanceof InstallRefusal) return err;
  return undefined;
}

export interface BundleExpectations {
  version: string;
  /** The data directory's schema now: a release that cannot read it is refused. */
  dataSchema: number;
  arch: BoxArch | undefined;
}

function checkManifest(m: BundleManifest, want: BundleExpectations): void {
  if (m.version !== want.version) throw new InstallRefusal('version-mismatch', `the bundle is version ${m.version}, the offer says ${want.version}`);
  if (m.dataSchema < want.dataSchema) throw new InstallRefusal('data-schema', `the bundle reads data schema ${m.dataSchema}, this box's data is at schema ${want.dataSchema}`);
}

/** Full verification without writing anything; throws InstallRefusal (or an I/O error). */
export async function verifyForInstall(bundle: string, pubkeys: string[], want: BundleExpectations): Promise<BundleManifest> {
  try {
    const m = await verifyBundle(bundle, pubkeys, want.arch ? { arch: want.arch } : {});
    checkManifest(m, want);
    return m;
  } catch (err) {
    throw refusalOf(err) ?? err;
  }
}

async function runnable(slotDir: string): Promise<boolean> {
  try {
    await access(join(slotDir, 'bin/node'), constants.X_OK);
    await access(join(slotDir, 'shared/cli/main.ts'), constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The launcher's test for a slot it may run (image-build/launcher/mbox-launch `runnable`). */
export const slotRunnable = runnable;

export async function wipeSlot(slotDir: string): Promise<void> {
  await rm(slotDir, { recursive: true, force: true });
  await fsyncPath(dirname(slotDir));
}

/**
 * Wipes `slotDir` and extracts the bundle into it. On any failure the slot is left empty (absent),
 * never half-filled: the launcher never picks a slot without bin/node.
 */
export async function installIntoSlot(bundle: string, slotDir: string, pubkeys: string[], want: BundleExpectations): Promise<BundleManifest> {
  await wipeSlot(slotDir);
  try {
    const m = await extractBundle(bundle, slotDir, pubkeys, want.arch ? { arch: want.arch } : {});
    checkManifest(m, want);
    if (!(await runnable(slotDir))) throw new InstallRefusal('not-runnable', 'the bundle has no executable bin/node or no shared/cli/main.ts');
    return m;
  } catch (err) {
    await wipeSlot(slotDir).catch(() => undefined);
    throw refusalOf(err) ?? err;
  }
}
