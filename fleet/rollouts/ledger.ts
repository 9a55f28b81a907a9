// Which release failed on which box. The fleet never offers such a release to that box again —
// in a later wave or a later rollout — unless an admin re-approved it for that box (the offer then
// carries retryApproved, which the box needs before it tries a version that failed on it).
// Sources: a rolled-back report, and the box's own failedVersions list (which also covers what
// failed while the fleet was not listening). A commit of the version clears its entry.
import type { UpdateStatus } from '../../shared/update/messages.ts';
import type { LedgerEntry } from './schemas.ts';

const keyOf = (deviceId: string, version: string): string => `${deviceId}\u0000${version}`;

export class FailureLedger {
  private readonly entries = new Map<string, LedgerEntry>();

  constructor(entries: readonly LedgerEntry[] = []) {
    for (const e of entries) this.entries.set(keyOf(e.deviceId, e.version), e);
  }

  all(): LedgerEntry[] {
    return [...this.entries.values()];
  }

  forDevice(deviceId: string): LedgerEntry[] {
    return this.all().filter((e) => e.deviceId === deviceId).sort((a, b) => (a.at < b.at ? 1 : -1));
  }

  get(deviceId: string, version: string): LedgerEntry | undefined {
    return this.entries.get(keyOf(deviceId, version));
  }

  /** Why `version` must not be offered to the box, or undefined. */
  blockedReason(deviceId: string, version: string, last: UpdateStatus | undefined): string | undefined {
    const e = this.get(deviceId, version);
    if (e?.state === 'approved') return undefined;
    if (e) return `failed on this box before: ${e.reason}`;
    if (last?.failedVersions.includes(version)) return 'the box reports that this release failed on it before';
    return undefined;
  }

  /** Learns from one report; true when the ledger changed. */
  learn(deviceId: string, st: UpdateStatus, nowIso: string): boolean {
    let changed = false;
    if (st.version && st.phase === 'committed') changed = this.entries.delete(keyOf(deviceId, st.version)) || changed;
    if (st.version && st.phase === 'rolled-back') {
      const prev = this.get(deviceId, st.version);
      // The caller drops repeats of a report it has seen (retained redelivery), so a rollback
      // after a re-approval is a new failure; one already recorded changes nothing.
      if (!prev || prev.state === 'approved') {
        this.set({ deviceId, version: st.version, state: 'failed', reason: st.reason ?? 'rolled back', at: nowIso, rolloutId: st.rolloutId });
        changed = true;
      }
    }
    for (const v of st.failedVersions) {
      if (this.get(deviceId, v)) continue;
      this.set({ deviceId, version: v, state: 'failed', reason: 'reported by the box (failedVersions)', at: nowIso, rolloutId: null });
      changed = true;
    }
    return changed;
  }

  approve(deviceId: string, version: string, by: string, rolloutId: string, nowIso: string): void {
    const prev = this.get(deviceId, version);
    this.set({ deviceId, version, state: 'approved', reason: prev?.reason ?? 'approved before any failure was recorded', at: nowIso, rolloutId, approvedBy: by });
  }

  private set(e: LedgerEntry): void {
    this.entries.set(keyOf(e.deviceId, e.version), e);
  }
}
