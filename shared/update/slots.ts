// The A/B layout on the box, shared by the launcher (image-build/launcher, a POSIX sh script that
// runs before Node), the updater (appliance/agent/update) and the image builder.
//
//   <root>/slots/a/ , <root>/slots/b/    a whole app each: bin/node, app files, node_modules
//   <root>/current -> slots/<x>          the slot to run; switched by renaming a new symlink over it
//   <root>/boot/pending                  "<slot> <version> <boots>" while a new slot is on trial
//   <root>/boot/rolled-back              "<version> <reason>" left by whoever rolled back, read once
//   <root>/state.json                    SlotState (the updater's memory; the launcher never reads JSON)
//
// Trial protocol: the updater writes boot/pending and switches `current`, then exits for a restart.
// The launcher counts boots of a pending slot; past MAX_TRIAL_BOOTS without a commit (crash loop)
// it switches back and writes boot/rolled-back. The app in the new slot commits (removes
// boot/pending) after its health window passes, or rolls back itself when a check fails.
import { Type, type Static } from '@sinclair/typebox';

export const SLOTS = ['a', 'b'] as const;
export type Slot = (typeof SLOTS)[number];
export const otherSlot = (s: Slot): Slot => (s === 'a' ? 'b' : 'a');

export const MAX_TRIAL_BOOTS = 3;

export const slotPaths = (root: string) => ({
  slot: (s: Slot) => `${root}/slots/${s}`,
  current: `${root}/current`,
  pending: `${root}/boot/pending`,
  rolledBack: `${root}/boot/rolled-back`,
  state: `${root}/state.json`,
  downloads: `${root}/downloads`,
});

export const SlotState = Type.Object({
  versions: Type.Object({ a: Type.Union([Type.String(), Type.Null()]), b: Type.Union([Type.String(), Type.Null()]) }),
  /** Releases that failed here, newest last, with why. */
  failed: Type.Array(Type.Object({ version: Type.String(), at: Type.String(), reason: Type.String() })),
  /** The offer being worked on, so a restart mid-update resumes or reports it. */
  inFlight: Type.Union([Type.Object({ rolloutId: Type.String(), version: Type.String(), slot: Type.Union([Type.Literal('a'), Type.Literal('b')]) }), Type.Null()]),
});
export type SlotState = Static<typeof SlotState>;
