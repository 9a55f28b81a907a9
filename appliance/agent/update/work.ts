// One offer, from download to the switch. The running slot is never touched: everything before
// the switch happens in <root>/downloads and the inactive slot, and the switch itself is boot/pending
// then one symlink rename. Anything that goes wrong before it leaves the box as it was and says why.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplianceConfig } from '../../../shared/config/appliance.ts';
import type { Logger } from '../../../shared/log.ts';
import type { UpdateOffer } from '../../../shared/update/messages.ts';
import { otherSlot, type Slot, type SlotState } from '../../../shared/update/slots.ts';
import { clearInterrupted } from './boot.ts';
import { DownloadError, downloadBundle, type DownloadTls } from './download.ts';
import { boxArch, InstallRefusal, installIntoSlot, loadPinnedKeys, verifyForInstall } from './install.ts';
import type { StatusChange } from './reporter.ts';
import type { SlotFiles } from './slot-files.ts';

export interface WorkDeps {
  files: SlotFiles;
  slot: Slot;
  config: ApplianceConfig;
  dataDir: string;
  log: Logger;
  report: (c: StatusChange) => Promise<unknown>;
  state: () => SlotState;
  saveState: (s: SlotState) => Promise<void>;
  tls: () => DownloadTls | undefined;
  dataSchema: () => Promise<number>;
  restart: (why: string) => Promise<void>;
  retry?: { minMs: number; maxMs: number; maxFailures: number };
}

const DEFAULT_RETRY = { minMs: 1000, maxMs: 60_000, maxFailures: 10 };

class Stop extends Error {}

/** Downloads with retries: a transient failure waits and resumes; `maxFailures` in a row without progress give up. */
async function fetchBundle(offer: UpdateOffer, file: string, signal: AbortSignal, deps: WorkDeps): Promise<void> {
  const retry = deps.retry ?? DEFAULT_RETRY;
  const base = { rolloutId: offer.rolloutId, version: offer.version, phase: 'downloading' as const };
  let failures = 0;
  for (;;) {
    if (signal.aborted) throw new Stop();
    const tls = deps.tls();
    if (!tls) throw new DownloadError('fatal', 'the box has no device identity to download with');
    let progressed = false;
    try {
      const r = await downloadBundle({
        url: offer.url,
        size: offer.size,
        sha256: offer.sha256,
        file,
        tls,
        signal,
        onProgress: (bytes, total) => {
          progressed = true;
          void deps.report({ ...base, progress: { bytes, total } });
        },
      });
      deps.log.info({ version: offer.version, fetched: r.fetched, resumedFrom: r.resumedFrom }, 'bundle downloaded');
      return;
    } catch (err) {
      if (signal.aborted) throw new Stop();
      if (!(err instanceof DownloadError) || err.kind === 'fatal') throw err;
      failures = progressed ? 1 : failures + 1;
      if (failures >= retry.maxFailures) throw new DownloadError('fatal', `${err.message} (gave up after ${failures} attempts in a row)`);
      const delay = Math.min(retry.maxMs, retry.minMs * 2 ** (failures - 1));
      deps.log.warn({ version: offer.version, err: err.message, retryInMs: delay }, 'bundle download interrupted; resuming later');
      await deps.report({ ...base, reason: `retrying in ${Math.round(delay / 1000)} s: ${err.message}` });
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }
}

export async function runOffer(offer: UpdateOffer, signal: AbortSignal, deps: WorkDeps): Promise<void> {
  const { files, log } = deps;
  const target = otherSlot(deps.slot);
  const file = join(files.paths.downloads, `${offer.version}.mbx`);
  const ids = { rolloutId: offer.rolloutId, version: offer.version };
  const dropDownload = async (): Promise<void> => {
    await rm(file, { force: true });
    await rm(`${file}.part`, { force: true });
  };
  log.info({ version: offer.version, rolloutId: offer.rolloutId, size: offer.size, into: target }, 'update offer accepted');
  try {
    await deps.report({ ...ids, phase: 'downloading', progress: { bytes: 0, total: offer.size } });
    await fetchBundle(offer, file, signal, deps);

    if (signal.aborted) throw new Stop();
    await deps.report({ ...ids, phase: 'verifying' });
    const pubkeys = await loadPinnedKeys(deps.config.updatePubkeys);
    const want = { version: offer.version, dataSchema: await deps.dataSchema(), arch: boxArch() };
    await verifyForInstall(file, pubkeys, want);

    if (signal.aborted) throw new Stop();
    await deps.report({ ...ids, phase: 'installing' });
    const inFlight = { rolloutId: offer.rolloutId, version: offer.version, slot: target };
    await deps.saveState({ ...deps.state(), versions: { ...deps.state().versions, [target]: null }, inFlight });
    const manifest = await installIntoSlot(file, files.paths.slot(target), pubkeys, want);
    await deps.saveState({ ...deps.state(), versions: { ...deps.state().versions, [target]: manifest.version } });
    await clearInterrupted(files);

    // Last chance to stop: after the switch the trial decides.
    if (signal.aborted) throw new Stop();
    await files.writePending({ slot: target, version: offer.version, boots: 0 });
    await files.pointCurrent(target);
    log.info({ version: offer.version, slot: target, files: manifest.files.length }, 'update installed; restarting into it');
    await deps.report({ ...ids, phase: 'restarting', reason: `installed into slot ${target}` });
    await deps.restart(`update to ${offer.version}`);
  } catch (err) {
    await deps.saveState({ ...deps.state(), inFlight: null }).catch(() => undefined);
    if (err instanceof Stop) {
      const why = signal.reason instanceof Error ? signal.reason.message : 'stopped';
      log.info({ version: offer.version, why }, 'update stopped before the switch');
      // A box that stops is not news for the fleet; a withdrawn or replaced offer is.
      if (!/stopping/.test(why)) await deps.report({ ...ids, phase: 'idle', reason: why });
      return;
    }
    if (err instanceof InstallRefusal || (err instanceof DownloadError && /sha256/.test(err.message))) {
      const code = err instanceof InstallRefusal ? err.code : 'sha256-mismatch';
      const reason = `bundle refused (${code}): ${err.message}`;
      log.error({ version: offer.version, code, err: err.message }, 'update refused');
      await dropDownload();
      await deps.report({ ...ids, phase: 'refused', reason });
      return;
    }
    log.error({ version: offer.version, err: (err as Error).message }, 'update failed; the running slot is untouched');
    await deps.report({ ...ids, phase: 'failed', reason: (err as Error).message });
  }
}
