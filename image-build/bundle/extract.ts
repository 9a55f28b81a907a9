// `extractBundle`: verify while extracting, into a hidden sibling `.<dest>.partial` that becomes
// `dest` by one rename once every file matched and everything is fsynced. A refusal or a crash never
// leaves a partial `dest`; a leftover `.partial` from a crash is cleared by the next attempt.
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { BundleFile, BundleManifest } from '../../shared/update/manifest.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import { readVerified, type PayloadSink, type VerifyOptions } from './verify.ts';

const FSYNC_PARALLEL = 16;

async function destState(dest: string): Promise<'absent' | 'empty'> {
  try {
    const st = await stat(dest);
    if (!st.isDirectory()) throw new Error(`cannot extract into ${dest}: not a directory`);
    if ((await readdir(dest)).length > 0) throw new Error(`cannot extract into ${dest}: not empty`);
    return 'empty';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
}

async function inPool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** Writes verified files under `root`; remembers what it made so it can be fsynced at the end. */
class DirectorySink implements PayloadSink {
  readonly dirs = new Set<string>();
  readonly files: string[] = [];
  private fh: FileHandle | undefined;
  private readonly root: string;

  constructor(root: string) {
    this.root = root;
    this.dirs.add(root);
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.dirs.has(dir)) return;
    await this.ensureDir(dirname(dir));
    await mkdir(dir, { mode: 0o755 });
    const fh = await open(dir, 'r');
    try {
      await fh.chmod(0o755); // not whatever the umask left
    } finally {
      await fh.close();
    }
    this.dirs.add(dir);
  }

  async begin(file: BundleFile): Promise<void> {
    const abs = join(this.root, ...file.path.split('/'));
    await this.ensureDir(dirname(abs));
    // 'wx': the paths were checked safe and unique, so an existing name here means something is wrong.
    this.fh = await open(abs, 'wx', 0o600);
    this.files.push(abs);
  }

  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) off += (await this.fh!.write(chunk, off, chunk.length - off)).bytesWritten;
  }

  async end(file: BundleFile): Promise<void> {
    const fh = this.fh!;
    this.fh = undefined;
    // The mode is the manifest's (signed), applied only now that the content matched.
    await fh.chmod(file.mode);
    await fh.close();
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }

  /** Files in parallel (the disk can merge the flushes), then directories deepest first. */
  async syncAll(): Promise<void> {
    await inPool(this.files, FSYNC_PARALLEL, fsyncPath);
    const dirs = [...this.dirs].sort((a, b) => b.length - a.length);
    await inPool(dirs, FSYNC_PARALLEL, fsyncPath);
  }
}

/**
 * Verifies `file` while extracting it into `destDir` (absent or empty). On any error — refusal,
 * disk full — nothing of it is left behind, and an existing empty `destDir` stays as it was.
 */
export async function extractBundle(file: string, destDir: string, pubkeys: string[], opts: VerifyOptions = {}): Promise<BundleManifest> {
  const dest = resolve(destDir);
  await destState(dest);
  const partial = join(dirname(dest), `.${basename(dest)}.partial`);
  await mkdir(dirname(dest), { recursive: true });
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { mode: 0o755 });
  const sink = new DirectorySink(partial);
  try {
    const fh = await open(partial, 'r');
    try {
      await fh.chmod(0o755);
    } finally {
      await fh.close();
    }
    const manifest = await readVerified(file, pubkeys, opts, sink);
    await sink.syncAll();
    // rename(2) replaces an empty directory, so an existing empty `dest` is fine.
    await rename(partial, dest);
    await fsyncPath(dirname(dest));
    return manifest;
  } catch (err) {
    await sink.abort();
    await rm(partial, { recursive: true, force: true });
    throw err;
  }
}
