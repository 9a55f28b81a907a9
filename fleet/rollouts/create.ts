// Making a rollout: which boxes, in which order, in which wave.
//  - Boxes are ordered by SHA-256 of their id: the same boxes are always first (a stable canary),
//    independent of enrolment order; the boxes already running the version are done (wave -1).
//  - Wave sizes are cumulative (percent of, or count of, the rollout's boxes reached by its end).
//  - A box the release failed on before (or a revoked one) is skipped, never offered.
import { createHash } from 'node:crypto';
import type { PlanContext } from './plan.ts';
import type { Rollout, RolloutBox, WaveSpec } from './schemas.ts';

/** Stable order: by SHA-256 of the id. */
export function orderTargets(ids: readonly string[]): string[] {
  const key = (id: string): string => createHash('sha256').update(id).digest('hex');
  return [...ids].map((id) => ({ id, k: key(id) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.id < b.id ? -1 : 1)).map((x) => x.id);
}

/** Cumulative box counts per wave for `n` boxes; throws on a spec with neither or both of percent/count. */
export function waveTargets(n: number, specs: readonly WaveSpec[]): number[] {
  let prev = 0;
  return specs.map((w, i) => {
    if ((w.percent === undefined) === (w.count === undefined)) throw new RangeError(`wave ${i + 1} needs exactly one of percent or count`);
    const want = w.count !== undefined ? w.count : Math.ceil(((w.percent ?? 0) / 100) * n - 1e-9);
    prev = Math.max(prev, Math.min(n, want));
    return prev;
  });
}

export interface NewRollout {
  id: string;
  version: string;
  group: string;
  sha256: string;
  size: number;
  createdBy: string;
  healthTimeoutMs: number;
  waves: readonly WaveSpec[];
  /** Devices of the group (not revoked) with the firmware they last reported. */
  targets: readonly { deviceId: string; firmware: string | null }[];
}

export function createRollout(input: NewRollout, ctx: PlanContext): Rollout {
  const at = new Date(ctx.nowMs).toISOString();
  const done = input.targets.filter((t) => t.firmware === input.version).map((t) => t.deviceId);
  const rest = orderTargets(input.targets.filter((t) => t.firmware !== input.version).map((t) => t.deviceId));
  const cumulative = waveTargets(rest.length, input.waves);
  const boxes: RolloutBox[] = done.sort().map((deviceId) => ({ deviceId, wave: -1, status: 'committed', reason: `already running ${input.version}`, updatedAt: at }));
  rest.forEach((deviceId, pos) => {
    const wave = cumulative.findIndex((c) => pos < c);
    if (wave === -1) return; // beyond the last wave: not part of this rollout
    const why = ctx.blocked(deviceId);
    boxes.push(why ? { deviceId, wave, status: 'skipped', reason: why, updatedAt: at } : { deviceId, wave, status: 'pending' });
  });
  const left = rest.length - (cumulative.at(-1) ?? 0);
  return {
    id: input.id,
    version: input.version,
    group: input.group,
    sha256: input.sha256,
    size: input.size,
    state: 'running',
    currentWave: 0,
    healthTimeoutMs: input.healthTimeoutMs,
    waves: input.waves.map((w, index) => ({
      index,
      cumulative: cumulative[index] ?? 0,
      size: (cumulative[index] ?? 0) - (index > 0 ? (cumulative[index - 1] ?? 0) : 0),
      successThreshold: w.successThreshold,
      failureThreshold: w.failureThreshold,
      state: 'waiting',
      excused: [],
    })),
    boxes,
    createdBy: input.createdBy,
    createdAt: at,
    updatedAt: at,
    timeline: [
      {
        at,
        event: 'created',
        detail: `${input.version} to group ${input.group} by ${input.createdBy}: ${input.targets.length} boxes, ${done.length} already on it, waves ${cumulative.join(' → ')}${left > 0 ? `, ${left} beyond the last wave` : ''}`,
      },
    ],
  };
}
