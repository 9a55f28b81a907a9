import { describe, expect, it } from 'vitest';
import { abort, applyStatus, approveRetry, createRollout, orderTargets, pauseByOperator, resume, StateError, step, tally, waveTargets, type PlanContext } from '../../../../fleet/rollouts/plan.ts';
import { DEFAULT_WAVES, type Rollout } from '../../../../fleet/rollouts/schemas.ts';
import type { UpdateStatus } from '../../../../shared/update/messages.ts';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `mb-unit${String(i).padStart(4, '0')}`);

function ctx(nowMs = T0, extra: Partial<PlanContext> = {}): PlanContext {
  return { nowMs, blocked: () => undefined, runningVersion: () => null, ...extra };
}

function make(n: number, opts: { waves?: typeof DEFAULT_WAVES; firmware?: (id: string) => string | null; blocked?: (id: string) => string | undefined } = {}): Rollout {
  return createRollout(
    {
      id: 'ro-test',
      version: '2.0.0',
      group: 'g',
      sha256: 'a'.repeat(64),
      size: 100,
      createdBy: 'alice',
      healthTimeoutMs: 60_000,
      waves: opts.waves ?? DEFAULT_WAVES,
      targets: ids(n).map((deviceId) => ({ deviceId, firmware: opts.firmware?.(deviceId) ?? '1.0.0' })),
    },
    ctx(T0, opts.blocked ? { blocked: opts.blocked } : {}),
  );
}

let seq = 0;
function report(r: Rollout, deviceId: string, phase: UpdateStatus['phase'], reason?: string, nowMs = T0 + 1000): ReturnType<typeof applyStatus> {
  seq++;
  return applyStatus(r, deviceId, { rolloutId: r.id, version: r.version, phase, runningVersion: '1.0.0', failedVersions: [], at: new Date(T0 + seq * 10).toISOString(), ...(reason ? { reason } : {}) }, nowMs);
}

const inWave = (r: Rollout, w: number): string[] => r.boxes.filter((b) => b.wave === w).map((b) => b.deviceId);

describe('waveTargets', () => {
  it('makes cumulative, non-decreasing counts, at least one box for a tiny percent', () => {
    expect(waveTargets(100, DEFAULT_WAVES)).toEqual([1, 10, 50, 100]);
    expect(waveTargets(7, DEFAULT_WAVES)).toEqual([1, 1, 4, 7]);
    expect(waveTargets(3, [{ percent: 10, successThreshold: 1, failureThreshold: 0.1 }])).toEqual([1]);
    expect(waveTargets(5, [{ count: 10, successThreshold: 1, failureThreshold: 0.1 }])).toEqual([5]);
  });

  it('refuses a wave with neither or both of percent and count', () => {
    expect(() => waveTargets(5, [{ successThreshold: 1, failureThreshold: 0.1 }])).toThrow(/exactly one/);
    expect(() => waveTargets(5, [{ count: 1, percent: 5, successThreshold: 1, failureThreshold: 0.1 }])).toThrow(/exactly one/);
  });
});

describe('createRollout', () => {
  it('orders boxes by id hash, counts boxes already on the version as done, skips blocked ones', () => {
    const r = make(20, { firmware: (id) => (id.endsWith('0003') ? '2.0.0' : '1.0.0'), blocked: (id) => (id.endsWith('0007') ? 'failed here before' : undefined) });
    expect(r.boxes.find((b) => b.deviceId.endsWith('0003'))).toMatchObject({ wave: -1, status: 'committed' });
    expect(r.boxes.find((b) => b.deviceId.endsWith('0007'))).toMatchObject({ status: 'skipped', reason: 'failed here before' });
    const order = orderTargets(ids(20).filter((id) => !id.endsWith('0003')));
    expect(r.boxes.filter((b) => b.wave >= 0).map((b) => b.deviceId)).toEqual(order);
    expect(r.waves.map((w) => w.size)).toEqual([1, 1, 8, 9]);
    // Same input, same plan.
    expect(make(20).boxes).toEqual(make(20).boxes);
  });
});

describe('step', () => {
  it('offers wave by wave and completes when every wave succeeds', () => {
    const r = make(20);
    let actions = step(r, ctx());
    expect(actions.filter((a) => a.kind === 'offer').map((a) => (a as { deviceId: string }).deviceId)).toEqual(inWave(r, 0));
    for (let w = 0; w < 4; w++) {
      for (const id of inWave(r, w)) report(r, id, 'committed');
      actions = step(r, ctx());
      if (w < 3) expect(actions.filter((a) => a.kind === 'offer').map((a) => (a as { deviceId: string }).deviceId)).toEqual(inWave(r, w + 1));
    }
    expect(r.state).toBe('completed');
    expect(r.waves.every((w) => w.state === 'complete')).toBe(true);
  });

  it('passes over an empty wave (rounding) to the next one', () => {
    const r = make(10); // 1, 1, 5, 10: the 10 % wave adds nobody
    step(r, ctx());
    report(r, inWave(r, 0)[0]!, 'committed');
    const offers = step(r, ctx()).filter((a) => a.kind === 'offer');
    expect(r.currentWave).toBe(2);
    expect(r.waves[1]?.state).toBe('complete');
    expect(offers).toHaveLength(4);
  });

  it('pauses as soon as the failure rate crosses the threshold, before the wave ends, and withdraws unacted offers', () => {
    const r = make(20, { waves: [{ percent: 100, successThreshold: 1, failureThreshold: 0.1 }] });
    step(r, ctx());
    const [a, b, c, d] = inWave(r, 0);
    report(r, a!, 'downloading');
    report(r, b!, 'rolled-back', 'health check failed');
    report(r, c!, 'failed', 'disk full');
    expect(step(r, ctx())).toEqual([]); // 2 of 20 = 10 %: not more than 10 %
    expect(r.state).toBe('running');
    report(r, d!, 'refused', 'signature-invalid');
    const actions = step(r, ctx());
    expect(r.state).toBe('paused');
    expect(r.pauseReason).toBe('wave 1: failure rate 15.0 % (3 of 20) exceeds 10.0 %');
    const withdrawn = actions.filter((x) => x.kind === 'withdraw').map((x) => (x as { deviceId: string }).deviceId);
    expect(withdrawn).toHaveLength(16);
    expect(withdrawn).not.toContain(a);
    expect(r.boxes.find((x) => x.deviceId === a)?.status).toBe('downloading');
    expect(r.boxes.filter((x) => x.status === 'pending').every((x) => x.reason === 'offer withdrawn' && x.offeredAt === undefined)).toBe(true);
    // Paused: nothing is offered, whatever happens.
    report(r, a!, 'committed');
    expect(step(r, ctx()).some((x) => x.kind === 'offer')).toBe(false);
  });

  it('pauses a finished wave whose success rate is below its threshold', () => {
    const r = make(10, { waves: [{ count: 5, successThreshold: 0.9, failureThreshold: 0.5 }, { percent: 100, successThreshold: 1, failureThreshold: 0.1 }] });
    step(r, ctx());
    const w0 = inWave(r, 0);
    w0.forEach((id, i) => report(r, id, i === 0 ? 'rolled-back' : 'committed', i === 0 ? 'crash loop' : undefined));
    step(r, ctx());
    expect(r.state).toBe('paused');
    expect(r.pauseReason).toBe('wave 1: success rate 80.0 % (4 of 5) is below 90.0 %');
    expect(r.currentWave).toBe(0);
  });

  it('resume accepts the failures so far; the wave is then judged on new ones', () => {
    const r = make(20, { waves: [{ count: 10, successThreshold: 0.5, failureThreshold: 0.1 }, { percent: 100, successThreshold: 0, failureThreshold: 1 }] });
    step(r, ctx());
    const w0 = inWave(r, 0);
    report(r, w0[0]!, 'rolled-back', 'x');
    report(r, w0[1]!, 'rolled-back', 'y');
    step(r, ctx());
    expect(r.state).toBe('paused');
    const offers = resume(r, 'bob', ctx()).filter((x) => x.kind === 'offer');
    expect(r.state).toBe('running');
    expect(r.waves[0]!.excused).toEqual([w0[0], w0[1]].sort());
    expect(offers).toHaveLength(8); // the withdrawn ones, offered again
    expect(tally(r, 0)).toMatchObject({ counted: 8, failures: 0 });
    for (const id of w0.slice(2)) report(r, id, 'committed');
    step(r, ctx());
    expect(r.currentWave).toBe(1);
    expect(() => resume(r, 'bob', ctx())).toThrow(StateError);
  });

  it('skips a box that became blocked before its wave, and treats timeouts as failures', () => {
    const r = make(4, { waves: [{ count: 2, successThreshold: 0, failureThreshold: 1 }, { percent: 100, successThreshold: 0, failureThreshold: 1 }] });
    step(r, ctx());
    const [w1a, w1b] = inWave(r, 1);
    const blocked = (id: string): string | undefined => (id === w1a ? 'revoked' : undefined);
    const w0 = inWave(r, 0);
    report(r, w0[0]!, 'committed');
    // w0[1] never reports: after the health timeout it is failed 'timeout' and its offer cleared.
    const late = T0 + 61_000;
    const actions = step(r, ctx(late, { blocked }));
    expect(r.boxes.find((b) => b.deviceId === w0[1])).toMatchObject({ status: 'failed', reason: 'timeout: no update status for 60 s' });
    expect(actions).toEqual(expect.arrayContaining([{ kind: 'withdraw', deviceId: w0[1] }, { kind: 'final', deviceId: w1a, status: 'skipped', reason: 'revoked' }, { kind: 'offer', deviceId: w1b, retryApproved: false }]));
  });

  it('a silent box that runs the version counts as committed at the timeout', () => {
    const r = make(1, { waves: [{ count: 1, successThreshold: 1, failureThreshold: 0 }] });
    step(r, ctx());
    step(r, ctx(T0 + 60_000, { runningVersion: () => '2.0.0' }));
    expect(r.state).toBe('completed');
    expect(r.boxes[0]?.reason).toMatch(/reports running 2.0.0/);
  });
});

describe('applyStatus', () => {
  it('ignores other rollouts, other versions, idle and repeated or older reports', () => {
    const r = make(2);
    step(r, ctx());
    const id = inWave(r, 0)[0]!;
    const base: UpdateStatus = { rolloutId: r.id, version: r.version, phase: 'downloading', runningVersion: '1.0.0', failedVersions: [], at: '2026-11-22T10:00:05.000Z' };
    expect(applyStatus(r, id, { ...base, rolloutId: 'ro-other' }, T0).changed).toBe(false);
    expect(applyStatus(r, id, { ...base, version: '3.0.0' }, T0).changed).toBe(false);
    expect(applyStatus(r, id, { ...base, phase: 'idle' }, T0).changed).toBe(false);
    expect(applyStatus(r, id, base, T0)).toMatchObject({ changed: true, final: false });
    expect(applyStatus(r, id, { ...base, phase: 'rolled-back' }, T0).changed).toBe(false); // same `at`: a retained repeat
    expect(applyStatus(r, id, { ...base, phase: 'rolled-back', at: '2026-11-22T10:00:04.000Z' }, T0).changed).toBe(false);
    expect(applyStatus(r, id, { ...base, phase: 'rolled-back', reason: 'crash loop', at: '2026-11-22T10:00:06.000Z' }, T0)).toMatchObject({ changed: true, final: true });
    expect(r.timeline.at(-1)).toMatchObject({ event: 'rolled-back', deviceId: id, detail: 'crash loop' });
  });
});

describe('people', () => {
  it('pause withdraws, abort withdraws and ends, neither works twice', () => {
    const r = make(10, { waves: [{ percent: 100, successThreshold: 1, failureThreshold: 1 }] });
    step(r, ctx());
    expect(pauseByOperator(r, 'carol', T0).filter((a) => a.kind === 'withdraw')).toHaveLength(10);
    expect(r.pauseReason).toBe('paused by carol');
    expect(() => pauseByOperator(r, 'carol', T0)).toThrow(StateError);
    resume(r, 'carol', ctx());
    expect(abort(r, 'carol', T0).filter((a) => a.kind === 'withdraw')).toHaveLength(10);
    expect(r.state).toBe('aborted');
    expect(step(r, ctx())).toEqual([]);
    expect(() => abort(r, 'carol', T0)).toThrow(StateError);
  });

  it('retry offers a failed box again with retryApproved, or marks a box of a later wave', () => {
    const r = make(10);
    step(r, ctx());
    const first = inWave(r, 0)[0]!;
    report(r, first, 'rolled-back', 'health check failed');
    step(r, ctx());
    expect(r.state).toBe('paused');
    expect(approveRetry(r, first, 'admin', T0)).toEqual([{ kind: 'offer', deviceId: first, retryApproved: true }]);
    expect(() => approveRetry(r, first, 'admin', T0)).toThrow(/offered/);
    const later = inWave(r, 3)[0]!;
    r.boxes.find((b) => b.deviceId === later)!.status = 'skipped';
    expect(approveRetry(r, later, 'admin', T0)).toEqual([]);
    expect(r.boxes.find((b) => b.deviceId === later)).toMatchObject({ status: 'pending', retryApproved: true });
  });
});
