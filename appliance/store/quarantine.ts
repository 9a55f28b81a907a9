// Bytes the box could not accept are kept, never dropped: each goes to quarantine/ with a JSON
// file beside it saying why, when and from whom.
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstanceSource } from '../../shared/types/store.ts';
import { fsyncPath as fsync } from '../../shared/storage/fsync.ts';

export interface QuarantineEntry {
  id: string;
  reason: string;
  source: InstanceSource;
  at: string;
  size: number;
  /** The UID the sender claimed, when it said one. */
  sopInstanceUid?: string;
}

export class Quarantine {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'quarantine');
  }

  /** Moves a file into quarantine, durably, with its reason beside it. */
  async add(path: string, entry: Omit<QuarantineEntry, 'id' | 'at'>): Promise<QuarantineEntry> {
    await mkdir(this.dir, { recursive: true });
    const at = new Date().toISOString();
    const id = `${at.replace(/[-:.]/g, '')}-${randomUUID().slice(0, 8)}`;
    const full: QuarantineEntry = { id, at, ...entry };
    const target = join(this.dir, `${id}.dcm`);
    try {
      await rename(path, target);
      await fsync(target);
    } catch {
      // Across file systems (a watched share): copy durably, then remove the source.
      await copyFile(path, target);
      await fsync(target);
      await unlink(path);
    }
    await writeFile(join(this.dir, `${id}.json`), `${JSON.stringify(full, null, 2)}\n`);
    await fsync(this.dir);
    return full;
  }

  async list(limit = 200): Promise<QuarantineEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const reasons = names.filter((n) => n.endsWith('.json')).sort().reverse().slice(0, limit);
    return Promise.all(reasons.map(async (n) => JSON.parse(await readFile(join(this.dir, n), 'utf8')) as QuarantineEntry));
  }
}

