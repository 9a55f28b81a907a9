// The two ends of a trial, as file changes in the slot root (the updater reports them).
import type { Logger } from '../../../shared/log.ts';
import { otherSlot, type Slot, type SlotState } from '../../../shared/update/slots.ts';
import type { Trial } from './boot.ts';
import { slotRunnable } from './install.ts';
import { dropBackup } from './schema.ts';
import type { SlotFiles } from './slot-files.ts';

/**
 * Commit: the launcher stops counting (pending removed first: after that the release stays even
 * if the rest is cut short — boot.ts finishes it), then the state records it and clears the
 * release's old failure, and the migration backup and downloads go.
 */
export async function commitTrial(files: SlotFiles, state: SlotState, trial: Trial, dataDir: string, log: Logger): Promise<SlotState> {
  await files.removePending();
  const next: SlotState = {
    ...state,
    versions: { ...state.versions, [trial.slot]: trial.version },
    failed: state.failed.filter((f) => f.version !== trial.version),
    inFlight: null,
  };
  await files.writeState(next);
  await dropBackup(dataDir).catch((err: unknown) => log.warn({ err }, 'data backup not removed'));
  await files.clearDownloads().catch((err: unknown) => log.warn({ err }, 'downloads not removed'));
  return next;
}

/**
 * Roll back from `slot`: the note (boot/rolled-back) first, then `current` to the other slot,
 * then pending — the launcher's order, so a power cut anywhere leaves a state either side reads
 * right. 'no-slot' when the other slot cannot run (nothing is changed then).
 */
export async function rollBackTrial(files: SlotFiles, slot: Slot, version: string, reason: string): Promise<'rolled-back' | 'no-slot'> {
  const back = otherSlot(slot);
  if (!(await slotRunnable(files.paths.slot(back)))) return 'no-slot';
  await files.writeRolledBack({ version, reason });
  await files.pointCurrent(back);
  await files.removePending();
  return 'rolled-back';
}
