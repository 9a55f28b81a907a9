// The app's side of the A/B files (layout and protocol: shared/update/slots.ts; the launcher,
// image-build/launcher/mbox-launch, reads and writes the same ones). Every change is a rename of a
// fsynced temp file (or an unlink) followed by a fsync of the directory, so a power cut leaves the
// old state or the new one.
import { mkdir, readdir, readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { writeFileDurable } from '../../../shared/crypto/durable-file.ts';
import { fsyncPath } from '../../../shared/storage/fsync.ts';
import type { UpdateOffer } from '../../../shared/update/messages.ts';
import { SLOTS, SlotState, slotPaths, type Slot } from '../../../shared/update/slots.ts';

export type OfferId = Pick<UpdateOffer, 'rolloutId' | 'version' | 'offeredAt'>;

export interface Pending {
  slot: Slot;
  version: string;
  boots: number;
}

export interface RolledBack {
  version: string;
  reason: string;
}

const isSlot = (s: string | undefined): s is Slot => (SLOTS as readonly string[]).includes(s ?? '');

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function removeDurable(path: string): Promise<void> {
  await rm(path, { force: true });
  await fsyncPath(dirname(path));
}

/** boot/pending as the launcher writes it; anything unreadable is `undefined` with the raw text. */
export function parsePending(text: string): Pending | undefined {
  const [slot, version, boots] = text.trim().split(/\s+/);
  if (!isSlot(slot) || !version) return undefined;
  const n = boots !== undefined && /^\d+$/.test(boots) ? Number(boots) : 0;
  return { slot, version, boots: n };
}

/** boot/rolled-back: "<version> <reason…>"; the reason may be empty. */
export function parseRolledBack(text: string): RolledBack | undefined {
  const line = text.trim();
  if (!line) return undefined;
  const space = line.indexOf(' ');
  if (space < 0) return { version: line, reason: 'rolled back (no reason given)' };
  return { version: line.slice(0, space), reason: line.slice(space + 1).trim() || 'rolled back (no reason given)' };
}

export class SlotFiles {
  readonly root: string;
  readonly paths: ReturnType<typeof slotPaths>;

  constructor(root: string) {
    this.root = root;
    this.paths = slotPaths(root);
  }

  async ensureDirs(): Promise<void> {
    await mkdir(dirname(this.paths.pending), { recursive: true });
    await mkdir(this.paths.downloads, { recursive: true });
  }

  async readPending(): Promise<Pending | 'unreadable' | undefined> {
    const text = await readOptional(this.paths.pending);
    if (text === undefined) return undefined;
    return parsePending(text) ?? 'unreadable';
  }

  /** Written before `current` is switched: the launcher counts the boots of this trial. */
  async writePending(p: Pending): Promise<void> {
    await writeFileDurable(this.paths.pending, `${p.slot} ${p.version} ${p.boots}\n`);
  }

  /** The commit: the launcher stops counting, the slot stays. */
  removePending(): Promise<void> {
    return removeDurable(this.paths.pending);
  }

  async readRolledBack(): Promise<RolledBack | undefined> {
    const text = await readOptional(this.paths.rolledBack);
    return text === undefined ? undefined : (parseRolledBack(text) ?? { version: 'unknown', reason: 'rolled back (empty note)' });
  }

  async writeRolledBack(r: RolledBack): Promise<void> {
    // One line: the launcher's format, and a newline in a reason would end it early.
    await writeFileDurable(this.paths.rolledBack, `${r.version} ${r.reason.replace(/\s+/g, ' ').trim()}\n`);
  }

  removeRolledBack(): Promise<void> {
    return removeDurable(this.paths.rolledBack);
  }

  /** The slot `current` names, or undefined when it is missing or names something else. */
  async currentSlot(): Promise<Slot | undefined> {
    let target: string;
    try {
      target = await readlink(this.paths.current);
    } catch {
      return undefined;
    }
    const m = /(?:^|\/)slots\/([ab])\/?$/.exec(target);
    return m && isSlot(m[1]) ? m[1] : undefined;
  }

  /** Points `current` at a slot by renaming a fresh relative symlink over it (atomic). */
  async pointCurrent(slot: Slot): Promise<void> {
    const tmp = `${this.paths.current}.tmp.${randomBytes(4).toString('hex')}`;
    await symlink(`slots/${slot}`, tmp);
    try {
      await rename(tmp, this.paths.current);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await fsyncPath(this.root);
  }

  /** SlotState, or undefined when there is none yet (or it is damaged: the caller rebuilds it). */
  async readState(): Promise<SlotState | 'damaged' | undefined> {
    const text = await readOptional(this.paths.state);
    if (text === undefined) return undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      return Value.Check(SlotState, parsed) ? parsed : 'damaged';
    } catch {
      return 'damaged';
    }
  }

  async writeState(s: SlotState): Promise<void> {
    await writeFileDurable(this.paths.state, `${JSON.stringify(s, null, 2)}\n`);
  }

  /** Where the last reported status is kept, so a restart reports it again until it is replaced. */
  get statusFile(): string {
    return `${this.root}/last-status.json`;
  }

  /** The last offer acted on (rolloutId, version, offeredAt): tells a redelivery from a new offer. */
  get actedFile(): string {
    return `${this.root}/last-offer.json`;
  }

  async readActed(): Promise<OfferId | undefined> {
    try {
      const v = JSON.parse(await readFile(this.actedFile, 'utf8')) as Partial<UpdateOffer>;
      return typeof v.rolloutId === 'string' && typeof v.version === 'string' && typeof v.offeredAt === 'string' ? { rolloutId: v.rolloutId, version: v.version, offeredAt: v.offeredAt } : undefined;
    } catch {
      return undefined;
    }
  }

  async writeActed(o: OfferId): Promise<void> {
    await writeFileDurable(this.actedFile, `${JSON.stringify(o)}\n`);
  }

  /** Everything under downloads/ (after a commit nothing there is needed). */
  async clearDownloads(): Promise<void> {
    for (const name of await readdir(this.paths.downloads)) await rm(join(this.paths.downloads, name), { recursive: true, force: true });
  }
}
