// Is this process an A/B slot that can update itself? Only when the code that runs lives in
// <root>/slots/<x>: a development checkout (or a root that does not hold this code) must refuse an
// offer rather than install a release somewhere that will never run.
import { realpathSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { SLOTS, slotPaths, type Slot } from '../../../shared/update/slots.ts';

export type UpdateContext = { updatable: true; root: string; slot: Slot } | { updatable: false; reason: string };

export const NOT_UPDATABLE = 'not updatable: not running from an A/B slot';

/** The app's own directory (where shared/, appliance/ and package.json of this release are). */
export const APP_DIR = resolve(import.meta.dirname, '..', '..', '..');

const real = (p: string): string | undefined => {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
};

/**
 * `root`: config key updateRoot, which the launcher sets through MBOX_UPDATE_ROOT. The slot is the
 * one whose directory holds `appDir` — not MBOX_SLOT alone, which only says what the launcher meant.
 */
export function locateSlot(root: string | undefined, appDir = APP_DIR): UpdateContext {
  if (!root) return { updatable: false, reason: NOT_UPDATABLE };
  const rootReal = real(root);
  if (!rootReal) return { updatable: false, reason: `${NOT_UPDATABLE} (update root ${root} does not exist)` };
  const app = real(appDir) ?? appDir;
  const paths = slotPaths(rootReal);
  for (const slot of SLOTS) {
    const dir = real(paths.slot(slot));
    if (dir && (app === dir || app.startsWith(dir + sep))) return { updatable: true, root: rootReal, slot };
  }
  return { updatable: false, reason: `${NOT_UPDATABLE} (${app} is not under ${rootReal}/slots)` };
}
