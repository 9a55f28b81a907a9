// What to do with an update offer: the pure half of the updater, so every case is a unit test.
import type { UpdateOffer } from '../../../shared/update/messages.ts';
import type { SlotState } from '../../../shared/update/slots.ts';

export interface OfferContext {
  /** undefined when this box can update itself; else why not. */
  notUpdatable: string | undefined;
  runningVersion: string;
  failed: SlotState['failed'];
  /** The version on trial in this process's health window, if one runs. */
  trial: string | undefined;
  /** The offer being worked on now (download/install), if any. */
  active: Pick<UpdateOffer, 'rolloutId' | 'version' | 'sha256'> | undefined;
  /**
   * The last offer this box acted on, when its outcome is final (committed, rolled back, failed):
   * that very offer, delivered again (it stays retained until the fleet withdraws it), is answered
   * already — acting on it again would loop a re-approved release that fails again.
   */
  answered?: (Pick<UpdateOffer, 'rolloutId' | 'version' | 'offeredAt'> & { phase: string }) | undefined;
}

export type OfferDecision =
  | { action: 'ignore'; why: string }
  | { action: 'report-committed'; why: string }
  | { action: 'refuse'; reason: string }
  | { action: 'install' };

/** The newest failure of `version` on this box. */
export function failureOf(failed: SlotState['failed'], version: string): SlotState['failed'][number] | undefined {
  for (let i = failed.length - 1; i >= 0; i--) if (failed[i]!.version === version) return failed[i];
  return undefined;
}

export function decideOffer(offer: UpdateOffer, ctx: OfferContext): OfferDecision {
  // The offer that brought the trial's release stays retained while it runs: its outcome is the
  // health window's to report.
  if (ctx.trial !== undefined) return { action: 'ignore', why: `health window of ${ctx.trial} running` };
  const a = ctx.answered;
  if (a && a.rolloutId === offer.rolloutId && a.version === offer.version && a.offeredAt === offer.offeredAt) return { action: 'ignore', why: `answered already (${a.phase})` };
  if (offer.version === ctx.runningVersion) return { action: 'report-committed', why: `already running ${offer.version}` };
  if (ctx.notUpdatable !== undefined) return { action: 'refuse', reason: ctx.notUpdatable };
  const failure = failureOf(ctx.failed, offer.version);
  if (failure && !offer.retryApproved) return { action: 'refuse', reason: `failed here before: ${failure.reason}` };
  if (ctx.active && ctx.active.rolloutId === offer.rolloutId && ctx.active.version === offer.version && ctx.active.sha256 === offer.sha256) {
    return { action: 'ignore', why: 'already working on this offer' };
  }
  return { action: 'install' };
}

/** SlotState.failed with `version`'s failure recorded once (newest last), at most `keep` entries. */
export function recordFailure(failed: SlotState['failed'], entry: SlotState['failed'][number], keep = 50): SlotState['failed'] {
  return [...failed.filter((f) => f.version !== entry.version), entry].slice(-keep);
}
