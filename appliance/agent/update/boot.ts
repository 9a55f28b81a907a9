// What a start finds in the slot root and makes of it, before the store opens: the note of a
// rollback (recorded as a failure of that release, reported once), the trial this slot is on, a
// commit or an install that a crash interrupted, and the data schema (restored after a rollback,
// migrated on a trial).
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import type { Logger } from '../../../shared/log.ts';
import { writeFileDurable } from '../../../shared/crypto/durable-file.ts';
import { UpdateStatus } from '../../../shared/update/messages.ts';
import { otherSlot, type Slot, type SlotState } from '../../../shared/update/slots.ts';
import { recordFailure } from './decide.ts';
import { migrateData, recoverData, type Migration } from './schema.ts';
import type { SlotFiles } from './slot-files.ts';
import type { StatusChange } from './reporter.ts';

export interface Trial {
  slot: Slot;
  version: string;
  rolloutId: string | null;
  boots: number;
}

export interface BootFacts {
  state: SlotState;
  trial: Trial | undefined;
  /** The status to report first; undefined: the last one on disk stands. */
  status: StatusChange | undefined;
  lastStatus: UpdateStatus | undefined;
}

export interface BootInput {
  files: SlotFiles;
  slot: Slot;
  runningVersion: string;
  dataDir: string;
  migrations: { list: readonly Migration[]; base: number; target: number };
  log: Logger;
}

/** How many interrupted installs of one release are retried before it is reported failed. */
export const MAX_INTERRUPTED_INSTALLS = 3;

const interruptedFile = (files: SlotFiles): string => join(files.paths.downloads, 'interrupted.json');

export async function readLastStatus(files: SlotFiles): Promise<UpdateStatus | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(files.statusFile, 'utf8'));
    return Value.Check(UpdateStatus, parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Counts interrupted installs per version; returns the count including this one. */
async function countInterrupted(files: SlotFiles, version: string): Promise<number> {
  let prev = { version: '', count: 0 };
  try {
    prev = JSON.parse(await readFile(interruptedFile(files), 'utf8')) as typeof prev;
  } catch {
    // none yet
  }
  const count = prev.version === version ? prev.count + 1 : 1;
  await writeFileDurable(interruptedFile(files), JSON.stringify({ version, count }));
  return count;
}

export async function clearInterrupted(files: SlotFiles): Promise<void> {
  await rm(interruptedFile(files), { force: true });
}

async function loadState(files: SlotFiles, slot: Slot, running: string, log: Logger): Promise<SlotState> {
  const read = await files.readState();
  if (read === 'damaged') log.error({ file: files.paths.state }, 'slot state is damaged: starting a new one (the memory of failed releases is lost)');
  const state: SlotState = read && read !== 'damaged' ? read : { versions: { a: null, b: null }, failed: [], inFlight: null };
  return { ...state, versions: { ...state.versions, [slot]: running } };
}

export async function prepareBoot(input: BootInput): Promise<BootFacts> {
  const { files, slot, runningVersion, log } = input;
  await files.ensureDirs();
  const lastStatus = await readLastStatus(files);
  const state = await loadState(files, slot, runningVersion, log);
  let status: StatusChange | undefined;
  let trial: Trial | undefined;

  // 1. A rollback happened (by the launcher after a crash loop, or by the new slot itself).
  const rolledBack = await files.readRolledBack();
  if (rolledBack) {
    const rolloutId = state.inFlight?.version === rolledBack.version ? state.inFlight.rolloutId : lastStatus?.version === rolledBack.version ? lastStatus.rolloutId : null;
    state.failed = recordFailure(state.failed, { version: rolledBack.version, at: new Date().toISOString(), reason: rolledBack.reason });
    if (state.inFlight?.version === rolledBack.version) state.inFlight = null;
    status = { rolloutId, version: rolledBack.version, phase: 'rolled-back', reason: rolledBack.reason };
    log.error({ version: rolledBack.version, reason: rolledBack.reason }, 'update rolled back: this release is remembered as failed here');
    await rm(join(files.paths.downloads, `${rolledBack.version}.mbx`), { force: true });
  }

  // 2. The trial this slot is on, if any.
  const pending = await files.readPending();
  if (pending && pending !== 'unreadable') {
    if (pending.slot === slot) {
      const rolloutId = state.inFlight?.version === pending.version ? state.inFlight.rolloutId : lastStatus?.version === pending.version ? lastStatus.rolloutId : null;
      trial = { slot, version: pending.version, rolloutId, boots: pending.boots };
      status = { rolloutId, version: pending.version, phase: 'health-check', reason: `trial boot ${pending.boots}` };
    } else {
      // The launcher drops these too: a switch that never happened (a crash before it).
      await files.removePending();
    }
  }

  // 3. Work a crash interrupted.
  const inFlight = state.inFlight;
  if (!trial && inFlight) {
    if (inFlight.slot === slot) {
      // The commit removed boot/pending but the crash came before it recorded the version.
      log.info({ version: runningVersion }, 'finishing a commit a restart interrupted');
      state.inFlight = null;
      status = { rolloutId: inFlight.rolloutId, version: inFlight.version, phase: 'committed' };
    } else {
      state.inFlight = null;
      state.versions[otherSlot(slot)] = null;
      const n = await countInterrupted(files, inFlight.version);
      if (n >= MAX_INTERRUPTED_INSTALLS) {
        status = { rolloutId: inFlight.rolloutId, version: inFlight.version, phase: 'failed', reason: `install interrupted ${n} times (restarts during install); not retried` };
        state.failed = recordFailure(state.failed, { version: inFlight.version, at: new Date().toISOString(), reason: status.reason ?? '' });
        await clearInterrupted(files);
      } else {
        log.warn({ version: inFlight.version, attempt: n }, 'an install was interrupted by a restart: it is retried when the offer comes again');
      }
    }
  }

  // The reason is recorded before the note that carried it goes: a crash in between reads it again.
  await files.writeState(state);
  if (rolledBack) await files.removeRolledBack();

  // 4. Data: back to this release's schema after a rollback; forward on a trial.
  const recovered = await recoverData(input.dataDir, input.migrations.target, input.migrations.base);
  if (recovered.action === 'restored') {
    log.warn({ from: recovered.from, to: recovered.to, why: recovered.why }, recovered.why === 'rolled-back' ? 'data restored from the backup taken before the rolled-back release migrated it' : 'data restored from the backup of a migration a crash cut short');
  }
  const migrated = await migrateData(input.dataDir, input.migrations.list, input.migrations.target, input.migrations.base, log);
  if (migrated.kind === 'migrated') log.info({ from: migrated.from, to: migrated.to, ran: migrated.ran }, 'data migrated');

  return { state, trial, status, lastStatus };
}
