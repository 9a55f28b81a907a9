import { describe, expect, it } from 'vitest';
import { FailureLedger } from '../../../../fleet/rollouts/ledger.ts';
import type { UpdateStatus } from '../../../../shared/update/messages.ts';

const st = (phase: UpdateStatus['phase'], extra: Partial<UpdateStatus> = {}): UpdateStatus => ({ rolloutId: 'ro-1', version: '2.0.0', phase, runningVersion: '1.0.0', failedVersions: [], at: '2026-11-22T10:00:00.000Z', ...extra });
const NOW = '2026-11-22T10:00:01.000Z';

describe('FailureLedger', () => {
  it('records a rollback once and blocks the release for that box only', () => {
    const l = new FailureLedger();
    expect(l.learn('mb-a0001', st('rolled-back', { reason: 'health check failed' }), NOW)).toBe(true);
    expect(l.learn('mb-a0001', st('rolled-back', { reason: 'health check failed' }), NOW)).toBe(false);
    expect(l.blockedReason('mb-a0001', '2.0.0', undefined)).toBe('failed on this box before: health check failed');
    expect(l.blockedReason('mb-a0002', '2.0.0', undefined)).toBeUndefined();
    expect(l.blockedReason('mb-a0001', '2.0.1', undefined)).toBeUndefined();
  });

  it("learns from the box's own failedVersions, and trusts them even without an entry", () => {
    const l = new FailureLedger();
    const report = st('idle', { version: null, rolloutId: null, failedVersions: ['1.5.0'] });
    expect(l.blockedReason('mb-a0001', '1.5.0', report)).toMatch(/box reports/);
    expect(l.learn('mb-a0001', report, NOW)).toBe(true);
    expect(l.get('mb-a0001', '1.5.0')).toMatchObject({ state: 'failed', rolloutId: null });
  });

  it('an approval unblocks; a new rollback blocks again; a commit clears', () => {
    const l = new FailureLedger();
    l.learn('mb-a0001', st('rolled-back', { reason: 'x', failedVersions: ['2.0.0'] }), NOW);
    l.approve('mb-a0001', '2.0.0', 'admin', 'ro-2', NOW);
    // The box still lists it in failedVersions: the approval wins.
    expect(l.blockedReason('mb-a0001', '2.0.0', st('rolled-back', { failedVersions: ['2.0.0'] }))).toBeUndefined();
    expect(l.learn('mb-a0001', st('idle', { failedVersions: ['2.0.0'] }), NOW)).toBe(false);
    expect(l.learn('mb-a0001', st('rolled-back', { reason: 'again' }), NOW)).toBe(true);
    expect(l.get('mb-a0001', '2.0.0')).toMatchObject({ state: 'failed', reason: 'again' });
    expect(l.learn('mb-a0001', st('committed'), NOW)).toBe(true);
    expect(l.forDevice('mb-a0001')).toEqual([]);
  });
});
