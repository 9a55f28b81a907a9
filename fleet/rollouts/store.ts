// Rollout state on disk, as atomic JSON files under <dataDir>/rollouts/ (a fleet restart continues
// where it was):
//   <id>.json             one Rollout each
//   ledger.json           LedgerEntry[]: which release failed on which box (never offered again
//                         unless an admin re-approved it)
//   device-status.json    the last UpdateStatus each box reported
// Each file is written by a CoalescedFile: one durable write in flight, the next one carries the
// latest value, so a burst of 100 reports costs a few writes, not 100.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import type { Logger } from '../../shared/log.ts';
import { UpdateStatus } from '../../shared/update/messages.ts';
import { LedgerEntry, Rollout } from './schemas.ts';

export class CoalescedFile {
  readonly path: string;
  private readonly log: Logger;
  private running: Promise<void> | undefined;
  private next: { make: () => string; waiters: Array<() => void> } | undefined;

  constructor(path: string, log: Logger) {
    this.path = path;
    this.log = log;
  }

  /** Resolves once a write that includes this call's state is on disk. `make` runs when it is written. */
  save(make: () => string): Promise<void> {
    return new Promise((resolve) => {
      if (this.next) {
        this.next.make = make;
        this.next.waiters.push(resolve);
        return;
      }
      this.next = { make, waiters: [resolve] };
      if (!this.running) this.drain();
    });
  }

  private drain(): void {
    const job = this.next;
    if (!job) return;
    this.next = undefined;
    this.running = writeFileDurable(this.path, job.make(), 0o600)
      .catch((err: unknown) => this.log.error({ err, path: this.path }, 'could not save rollout state; the next change retries'))
      .then(() => {
        this.running = undefined;
        for (const w of job.waiters) w();
        this.drain();
      });
  }

  async flush(): Promise<void> {
    while (this.running || this.next) await (this.running ?? Promise.resolve());
  }
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path} cannot be read (${(err as Error).message}); fix or remove it`, { cause: err });
  }
}

const ROLLOUT_FILE = /^(ro-[a-z0-9]+)\.json$/;

export interface LoadedState {
  rollouts: Rollout[];
  ledger: LedgerEntry[];
  statuses: Map<string, UpdateStatus>;
}

export class RolloutStore {
  readonly dir: string;
  private readonly log: Logger;
  private readonly files = new Map<string, CoalescedFile>();

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  async load(): Promise<LoadedState> {
    const rollouts: Rollout[] = [];
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names.sort()) {
      if (!ROLLOUT_FILE.test(name)) continue;
      const value = await readJson(join(this.dir, name));
      if (!Value.Check(Rollout, value)) throw new Error(`${join(this.dir, name)} is not a rollout record; fix or remove it`);
      rollouts.push(value);
    }
    const ledgerRaw = await readJson(join(this.dir, 'ledger.json'));
    const ledger = Array.isArray(ledgerRaw) ? ledgerRaw.filter((e): e is LedgerEntry => Value.Check(LedgerEntry, e)) : [];
    const statusRaw = await readJson(join(this.dir, 'device-status.json'));
    const statuses = new Map<string, UpdateStatus>();
    if (statusRaw && typeof statusRaw === 'object') {
      for (const [id, st] of Object.entries(statusRaw as Record<string, unknown>)) if (Value.Check(UpdateStatus, st)) statuses.set(id, st);
    }
    return { rollouts, ledger, statuses };
  }

  saveRollout(r: Rollout): Promise<void> {
    return this.file(`${r.id}.json`).save(() => `${JSON.stringify(r)}\n`);
  }

  saveLedger(make: () => LedgerEntry[]): Promise<void> {
    return this.file('ledger.json').save(() => `${JSON.stringify(make(), null, 1)}\n`);
  }

  saveStatuses(make: () => Record<string, UpdateStatus>): Promise<void> {
    return this.file('device-status.json').save(() => `${JSON.stringify(make())}\n`);
  }

  async flush(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.flush()));
  }

  private file(name: string): CoalescedFile {
    let f = this.files.get(name);
    if (!f) {
      f = new CoalescedFile(join(this.dir, name), this.log);
      this.files.set(name, f);
    }
    return f;
  }
}
