// Content-addressed object files: objects/<hash[0:2]>/<hash>.dcm under the data directory, written
// through a temp file on the same file system and made durable (data + directory entry) before
// anything refers to them.
import { randomUUID } from 'node:crypto';
import { closeSync, fdatasync as fdatasyncCb, linkSync, renameSync, unlinkSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DirSync, fsyncPath } from '../../shared/storage/fsync.ts';

const fdatasync = promisify(fdatasyncCb);

export class ObjectStore {
  readonly dataDir: string;
  readonly tmpDir: string;
  private readonly dirSync = new DirSync();

  constructor(dataDir: string) {
    this.dataDir = dataDir;
    this.tmpDir = join(dataDir, 'tmp');
  }

  async open(): Promise<void> {
    // All shard directories up front: no mkdir (and no parent fsync) on the receive path.
    for (let i = 0; i < 256; i++) await mkdir(join(this.dataDir, 'objects', i.toString(16).padStart(2, '0')), { recursive: true });
    await fsyncPath(join(this.dataDir, 'objects'));
    // Temp files belong to requests that were never answered: nothing refers to them.
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  newTempPath(): string {
    return join(this.tmpDir, `${randomUUID()}.part`);
  }

  relPath(contentHash: string): string {
    return join('objects', contentHash.slice(0, 2), `${contentHash}.dcm`);
  }

  absPath(relPath: string): string {
    return join(this.dataDir, relPath);
  }

  /**
   * Makes a written temp file the durable object for its hash, then closes `fd` and removes the
   * temp name. The caller holds the object's UID lock, and the hash covers the UID, so no other
   * request is placing the same bytes meanwhile.
   */
  async place(tempPath: string, fd: number, contentHash: string): Promise<string> {
    const rel = this.relPath(contentHash);
    const finalPath = this.absPath(rel);
    const shardDir = join(this.dataDir, 'objects', contentHash.slice(0, 2));
    try {
      try {
        // link refuses to replace: an object some record points to is never touched.
        linkSync(tempPath, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A file no record points to yet (the caller found none): left by a crash between link
        // and sync, possibly torn. These bytes are whole, so they replace it.
        renameSync(tempPath, finalPath);
      }
      await Promise.all([fdatasync(fd), this.dirSync.sync(shardDir)]);
    } catch (err) {
      throw new Error(`cannot store object ${rel}: ${(err as Error).message}`, { cause: err });
    } finally {
      closeSync(fd);
      discard(tempPath);
    }
    return rel;
  }
}

/** Removes a temp file that is no longer needed (already gone is fine). */
export function discard(tempPath: string): void {
  try {
    unlinkSync(tempPath);
  } catch {
    // renamed into place, or never created
  }
}
