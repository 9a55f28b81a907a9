// The rollout engine's decisions, pure: a rollout record plus what happened (a box's report, the
// clock, a person's action) → the changed record and the actions the driver must carry out
// (publish or withdraw offers). No I/O here, so every rule is unit-tested without a broker.
//
// Rules (how a rollout is made and its waves sized: create.ts):
//  - Failure rate = failures / counted boxes of the wave, where counted leaves out skipped boxes and
//    failures an operator excused by resuming. It can only grow while the wave runs, so it is
//    checked on every report: crossing failureThreshold pauses at once, without waiting for the
//    rest of the wave, and withdraws the offers nobody acted on yet.
//  - A wave is complete when all its boxes are final; the rollout advances when committed / counted
//    ≥ successThreshold, otherwise it pauses for a person to look.
import type { UpdateStatus } from '../../shared/update/messages.ts';
import { ACTIVE_STATUSES, FAILURE_STATUSES, FINAL_STATUSES, type BoxStatus, type Rollout, type RolloutBox, type TimelineEntry, type WaveTally } from './schemas.ts';

export { createRollout, orderTargets, waveTargets, type NewRollout } from './create.ts';

export const MAX_TIMELINE = 2000;

export interface PlanContext {
  nowMs: number;
  /** Why this box must not be offered this release now (failed here before, revoked), or undefined. */
  blocked(deviceId: string): string | undefined;
  /** Version the box last said it runs (registry firmware), or null. */
  runningVersion(deviceId: string): string | null;
}

export type Action =
  | { kind: 'offer'; deviceId: string; retryApproved: boolean }
  /** Clear the retained offer (withdrawn, or no longer needed once the box is final). */
  | { kind: 'withdraw'; deviceId: string }
  /** A box became final by the fleet's own decision (timeout, skipped at offer time). */
  | { kind: 'final'; deviceId: string; status: BoxStatus; reason: string }
  | { kind: 'paused'; reason: string; wave: number }
  | { kind: 'wave-complete'; wave: number }
  | { kind: 'completed' };

export function tally(r: Rollout, wave: number): WaveTally {
  const excused = new Set(r.waves[wave]?.excused ?? []);
  const t = { size: 0, counted: 0, committed: 0, failures: 0, active: 0, pending: 0, skipped: 0 };
  for (const b of r.boxes) {
    if (b.wave !== wave) continue;
    t.size++;
    if (b.status === 'skipped') {
      t.skipped++;
      continue;
    }
    if (ACTIVE_STATUSES.has(b.status)) t.active++;
    if (b.status === 'pending') t.pending++;
    if (excused.has(b.deviceId) && FAILURE_STATUSES.has(b.status)) continue;
    t.counted++;
    if (b.status === 'committed') t.committed++;
    if (FAILURE_STATUSES.has(b.status)) t.failures++;
  }
  const final = t.active === 0 && t.pending === 0;
  return {
    ...t,
    final,
    failureRate: t.counted > 0 ? t.failures / t.counted : null,
    successRate: t.counted > 0 ? t.committed / t.counted : null,
  };
}

export function counts(r: Rollout): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of r.boxes) out[b.status] = (out[b.status] ?? 0) + 1;
  return out;
}

function note(r: Rollout, nowMs: number, entry: Omit<TimelineEntry, 'at'>): void {
  r.timeline.push({ at: new Date(nowMs).toISOString(), ...entry });
  if (r.timeline.length > MAX_TIMELINE) r.timeline.splice(0, r.timeline.length - MAX_TIMELINE);
  r.updatedAt = new Date(nowMs).toISOString();
}

const pct = (x: number | null): string => (x === null ? '—' : `${(x * 100).toFixed(1)} %`);

/** Withdraws every offer nobody acted on: those boxes go back to pending. */
function withdrawUnacted(r: Rollout, nowMs: number): Action[] {
  const out: Action[] = [];
  for (const b of r.boxes) {
    if (b.status !== 'offered') continue;
    b.status = 'pending';
    b.reason = 'offer withdrawn';
    b.updatedAt = new Date(nowMs).toISOString();
    delete b.offeredAt;
    out.push({ kind: 'withdraw', deviceId: b.deviceId });
  }
  return out;
}

function pause(r: Rollout, reason: string, nowMs: number): Action[] {
  r.state = 'paused';
  r.pauseReason = reason;
  note(r, nowMs, { event: 'paused', detail: reason, wave: r.currentWave });
  return [{ kind: 'paused', reason, wave: r.currentWave }, ...withdrawUnacted(r, nowMs)];
}

function offer(r: Rollout, b: RolloutBox, nowMs: number): Action {
  const at = new Date(nowMs).toISOString();
  b.status = 'offered';
  b.offeredAt = at;
  b.updatedAt = at;
  delete b.progress;
  b.reason = b.retryApproved ? 'offered again (retry approved)' : undefined;
  if (b.reason === undefined) delete b.reason;
  return { kind: 'offer', deviceId: b.deviceId, retryApproved: b.retryApproved === true };
}

/** Boxes silent past the health timeout become failed 'timeout' (or committed, if they run the version). */
function sweepTimeouts(r: Rollout, ctx: PlanContext): Action[] {
  const out: Action[] = [];
  for (const b of r.boxes) {
    if (!ACTIVE_STATUSES.has(b.status)) continue;
    const since = Date.parse(b.updatedAt ?? b.offeredAt ?? r.createdAt);
    if (ctx.nowMs - since < r.healthTimeoutMs) continue;
    const running = ctx.runningVersion(b.deviceId) === r.version;
    b.status = running ? 'committed' : 'failed';
    b.reason = running ? `reports running ${r.version}; no final update status within the health timeout` : `timeout: no update status for ${Math.round(r.healthTimeoutMs / 1000)} s`;
    b.updatedAt = new Date(ctx.nowMs).toISOString();
    note(r, ctx.nowMs, { event: b.status, deviceId: b.deviceId, wave: b.wave, detail: b.reason });
    out.push({ kind: 'final', deviceId: b.deviceId, status: b.status, reason: b.reason }, { kind: 'withdraw', deviceId: b.deviceId });
  }
  return out;
}

/** Moves a running rollout forward as far as the current facts allow. */
export function step(r: Rollout, ctx: PlanContext): Action[] {
  if (r.state === 'aborted') return [];
  const actions = sweepTimeouts(r, ctx);
  if (r.state !== 'running') return actions;
  for (;;) {
    const w = r.waves[r.currentWave];
    if (!w) return actions;
    if (w.state === 'waiting') {
      w.state = 'running';
      w.startedAt = new Date(ctx.nowMs).toISOString();
      note(r, ctx.nowMs, { event: 'wave-started', wave: w.index, detail: `wave ${w.index + 1}: ${w.size} boxes` });
    }
    for (const b of r.boxes) {
      if (b.wave !== w.index || b.status !== 'pending') continue;
      const why = ctx.blocked(b.deviceId);
      if (why && !b.retryApproved) {
        Object.assign(b, { status: 'skipped', reason: why, updatedAt: new Date(ctx.nowMs).toISOString() });
        actions.push({ kind: 'final', deviceId: b.deviceId, status: 'skipped', reason: why });
        continue;
      }
      actions.push(offer(r, b, ctx.nowMs));
    }
    const t = tally(r, w.index);
    if (t.failureRate !== null && t.failureRate > w.failureThreshold) {
      return [...actions, ...pause(r, `wave ${w.index + 1}: failure rate ${pct(t.failureRate)} (${t.failures} of ${t.counted}) exceeds ${pct(w.failureThreshold)}`, ctx.nowMs)];
    }
    if (!t.final) return actions;
    const success = t.successRate ?? 1;
    if (success < w.successThreshold) {
      return [...actions, ...pause(r, `wave ${w.index + 1}: success rate ${pct(success)} (${t.committed} of ${t.counted}) is below ${pct(w.successThreshold)}`, ctx.nowMs)];
    }
    w.state = 'complete';
    w.completedAt = new Date(ctx.nowMs).toISOString();
    note(r, ctx.nowMs, { event: 'wave-complete', wave: w.index, detail: w.size === 0 ? `wave ${w.index + 1}: no boxes` : `wave ${w.index + 1}: ${t.committed} of ${t.counted} committed (${pct(t.successRate)})` });
    actions.push({ kind: 'wave-complete', wave: w.index });
    if (r.currentWave >= r.waves.length - 1) {
      r.state = 'completed';
      note(r, ctx.nowMs, { event: 'completed' });
      actions.push({ kind: 'completed' });
      return actions;
    }
    r.currentWave++;
  }
}

const PHASE_TO_STATUS: Partial<Record<UpdateStatus['phase'], BoxStatus>> = {
  downloading: 'downloading',
  verifying: 'verifying',
  installing: 'installing',
  restarting: 'restarting',
  'health-check': 'health-check',
  committed: 'committed',
  'rolled-back': 'rolled-back',
  refused: 'refused',
  failed: 'failed',
};

/**
 * A box's report about this rollout. Reports about another rollout or version, 'idle', and
 * repeats (the same or an older `at` on the box's clock: a retained status delivered again) change
 * nothing. A report is believed even for a box whose offer was withdrawn: it is what happened.
 */
export function applyStatus(r: Rollout, deviceId: string, st: UpdateStatus, nowMs: number): { changed: boolean; box?: RolloutBox; final?: boolean } {
  if (st.rolloutId !== r.id || st.version !== r.version) return { changed: false };
  const b = r.boxes.find((x) => x.deviceId === deviceId);
  const status = PHASE_TO_STATUS[st.phase];
  if (!b || !status) return { changed: false };
  const at = Date.parse(st.at);
  if (b.lastReportAt !== undefined && !(at > Date.parse(b.lastReportAt))) return { changed: false };
  b.lastReportAt = st.at;
  b.updatedAt = new Date(nowMs).toISOString();
  if (st.progress) b.progress = st.progress;
  if (b.status === status && (st.reason ?? undefined) === b.reason) return { changed: true, box: b };
  b.status = status;
  if (st.reason) b.reason = st.reason;
  else delete b.reason;
  const final = FINAL_STATUSES.has(status);
  if (final) note(r, nowMs, { event: status, deviceId, wave: b.wave, ...(st.reason ? { detail: st.reason } : {}) });
  return { changed: true, box: b, final };
}

// --- People's actions ---------------------------------------------------------------------------

export function pauseByOperator(r: Rollout, by: string, nowMs: number): Action[] {
  if (r.state !== 'running') throw new StateError(`rollout ${r.id} is ${r.state}, not running`);
  return pause(r, `paused by ${by}`, nowMs);
}

/** Resuming accepts the current wave's failures so far; new ones are judged against the thresholds. */
export function resume(r: Rollout, by: string, ctx: PlanContext): Action[] {
  if (r.state !== 'paused') throw new StateError(`rollout ${r.id} is ${r.state}, not paused`);
  const w = r.waves[r.currentWave];
  if (w) {
    const excused = new Set(w.excused);
    for (const b of r.boxes) if (b.wave === w.index && FAILURE_STATUSES.has(b.status)) excused.add(b.deviceId);
    w.excused = [...excused].sort();
  }
  r.state = 'running';
  delete r.pauseReason;
  note(r, ctx.nowMs, { event: 'resumed', detail: `by ${by}${w && w.excused.length ? `; ${w.excused.length} failures of wave ${w.index + 1} accepted` : ''}`, wave: r.currentWave });
  return step(r, ctx);
}

export function abort(r: Rollout, by: string, nowMs: number): Action[] {
  if (r.state === 'aborted' || r.state === 'completed') throw new StateError(`rollout ${r.id} is ${r.state} already`);
  r.state = 'aborted';
  delete r.pauseReason;
  note(r, nowMs, { event: 'aborted', detail: `by ${by}` });
  return withdrawUnacted(r, nowMs);
}

/** An admin re-approves this release for one box that failed it: offered again with retryApproved. */
export function approveRetry(r: Rollout, deviceId: string, by: string, nowMs: number): Action[] {
  if (r.state === 'aborted') throw new StateError(`rollout ${r.id} is aborted`);
  const b = r.boxes.find((x) => x.deviceId === deviceId);
  if (!b || b.wave < 0) throw new StateError(`device ${deviceId} is not a box of rollout ${r.id} that can take ${r.version}`);
  if (ACTIVE_STATUSES.has(b.status) || b.status === 'committed') throw new StateError(`device ${deviceId} is ${b.status} in rollout ${r.id}: nothing to retry`);
  b.retryApproved = true;
  // A new try is judged again: a failure the operator once excused counts if it happens twice.
  const w = r.waves[b.wave];
  if (w) w.excused = w.excused.filter((id) => id !== deviceId);
  note(r, nowMs, { event: 'retry-approved', deviceId, wave: b.wave, detail: `by ${by}` });
  const started = b.wave < r.currentWave || r.state === 'completed' || r.waves[b.wave]?.state !== 'waiting';
  if (!started) {
    Object.assign(b, { status: 'pending', reason: `retry approved by ${by}`, updatedAt: new Date(nowMs).toISOString() });
    return [];
  }
  return [offer(r, b, nowMs)];
}

export class StateError extends Error {
  override name = 'StateError';
}
