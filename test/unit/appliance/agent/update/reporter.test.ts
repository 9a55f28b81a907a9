import { afterEach, describe, expect, it, vi } from 'vitest';
import { isProgressOnly, nextAt, sendTiming, StatusReporter, type StatusChange } from '../../../../../appliance/agent/update/reporter.ts';
import type { UpdateStatus } from '../../../../../shared/update/messages.ts';

const dl = (bytes: number, total = 1000): StatusChange => ({ rolloutId: 'r', version: '1.1.0', phase: 'downloading', progress: { bytes, total } });

describe('status throttling (pure)', () => {
  it('treats only a progress step of the same phase/offer/reason as progress', () => {
    expect(isProgressOnly(undefined, dl(1))).toBe(false);
    expect(isProgressOnly(dl(1), dl(2))).toBe(true);
    expect(isProgressOnly(dl(1), { ...dl(2), reason: 'retrying' })).toBe(false);
    expect(isProgressOnly(dl(1), { ...dl(2), rolloutId: 'other' })).toBe(false);
    expect(isProgressOnly(dl(1), { rolloutId: 'r', version: '1.1.0', phase: 'verifying' })).toBe(false);
  });

  it('sends phase changes and the last byte at once, progress at most once per interval', () => {
    expect(sendTiming(dl(1), { rolloutId: 'r', version: '1.1.0', phase: 'verifying' }, 100, 101, 2000)).toEqual({ now: true });
    expect(sendTiming(dl(1), dl(2), 100, 600, 2000)).toEqual({ now: false, delayMs: 1500 });
    expect(sendTiming(dl(1), dl(2), 100, 2100, 2000)).toEqual({ now: true });
    expect(sendTiming(dl(1), dl(1000), 100, 101, 2000)).toEqual({ now: true });
  });

  it('makes `at` strictly increasing even when the clock stands still or steps back', () => {
    expect(nextAt(0, 1000).ms).toBe(1000);
    expect(nextAt(1000, 1000).ms).toBe(1001);
    expect(nextAt(5000, 1000).ms).toBe(5001);
    expect(nextAt(0, 1000).iso).toBe('1970-01-01T00:00:01.000Z');
  });
});

describe('StatusReporter', () => {
  afterEach(() => vi.useRealTimers());

  it('coalesces a burst of progress into the first and one trailing message; persists phases only', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const sent: UpdateStatus[] = [];
    const persisted: UpdateStatus[] = [];
    const r = new StatusReporter({
      send: async (s) => void sent.push(s),
      persist: async (s) => void persisted.push(s),
      runningVersion: '1.0.0',
      failedVersions: () => ['0.9.0'],
      progressIntervalMs: 1000,
    });
    await r.report(dl(0));
    for (let b = 10; b < 500; b += 10) {
      await r.report(dl(b));
      vi.advanceTimersByTime(10);
    }
    expect(sent.map((s) => s.progress?.bytes)).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent.map((s) => s.progress?.bytes)).toEqual([0, 490]);
    await r.report({ rolloutId: 'r', version: '1.1.0', phase: 'verifying' });
    expect(sent.at(-1)).toMatchObject({ phase: 'verifying', runningVersion: '1.0.0', failedVersions: ['0.9.0'] });
    expect(sent.at(-1)?.progress).toBeUndefined();
    expect(persisted.map((s) => s.phase)).toEqual(['downloading', 'verifying']);
    const ats = sent.map((s) => Date.parse(s.at));
    expect([...ats].sort((a, b) => a - b)).toEqual(ats);
    expect(new Set(ats).size).toBe(ats.length);
    r.stop();
  });

  it('starts from the status a previous run left, with this run\'s version, and resends it', async () => {
    const sent: UpdateStatus[] = [];
    const before: UpdateStatus = { rolloutId: 'r', version: '1.1.0', phase: 'refused', reason: 'x', runningVersion: 'old', failedVersions: [], at: '2030-01-01T00:00:00.000Z' };
    const r = new StatusReporter({ send: async (s) => void sent.push(s), persist: async () => undefined, runningVersion: '1.0.0', failedVersions: () => [] }, before);
    await r.resend();
    expect(sent[0]).toMatchObject({ phase: 'refused', runningVersion: '1.0.0', at: before.at });
    // A later report is newer than the one on disk even if this clock is behind it.
    const next = await r.report({ rolloutId: null, version: null, phase: 'idle' });
    expect(Date.parse(next.at)).toBeGreaterThan(Date.parse(before.at));
  });
});
