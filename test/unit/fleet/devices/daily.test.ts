// Fleet-wide daily figures: a device's report replaces its previous one, a relabelled device's
// recent days move to its new clinic, old days are final, and empty buckets disappear.
import { describe, expect, it } from 'vitest';
import { addDays, DailyStats } from '../../../../fleet/devices/daily.ts';
import { daily } from './fixtures.ts';

const NOW = Date.parse('2026-11-10T12:00:00.000Z');

describe('DailyStats', () => {
  it('replaces, moves and finalises contributions', () => {
    const d = new DailyStats();
    expect(d.apply('a', 'north', [daily('2026-11-10', 'CT', { studies: 1 })], NOW)).toHaveLength(1);
    // Same numbers again: nothing to persist.
    expect(d.apply('a', 'north', [daily('2026-11-10', 'CT', { studies: 1 })], NOW)).toHaveLength(0);
    d.apply('b', 'north', [daily('2026-11-10', 'CT', { studies: 2, uploadLatencyMs: { count: 1, sum: 50, max: 900 } })], NOW);
    expect(d.rows(1, NOW)).toMatchObject([{ clinic: 'north', studies: 3, uploadLatencyMsMax: 900 }]);
    // Device a now belongs to clinic south: its day moves.
    d.apply('a', 'south', [daily('2026-11-10', 'CT', { studies: 1 })], NOW);
    expect(d.rows(1, NOW).map((r) => [r.clinic, r.studies])).toEqual([
      ['north', 2],
      ['south', 1],
    ]);
    // b's row for that clinic empties out when b reports zero figures for the modality elsewhere.
    d.apply('b', 'east', [daily('2026-11-10', 'CT', { studies: 0, instances: 0, bytesReceived: 0, bytesSent: 0, uploadLatencyMs: { count: 0, sum: 0, max: 0 } })], NOW);
    expect(d.rows(1, NOW).map((r) => r.clinic)).toEqual(['east', 'south']);
    // Days before the recent window are final.
    expect(d.apply('a', 'south', [daily(addDays('2026-11-10', -10), 'MR')], NOW)).toEqual([]);
    expect(d.rows(30, NOW).every((r) => r.day === '2026-11-10')).toBe(true);
  });

  it('rows are newest day first and cover exactly the asked days', () => {
    const d = new DailyStats();
    d.apply('a', 'x', [daily('2026-11-08', 'CT'), daily('2026-11-09', 'CT'), daily('2026-11-10', 'MR')], NOW);
    expect(d.rows(3, NOW).map((r) => r.day)).toEqual(['2026-11-10', '2026-11-09', '2026-11-08']);
    expect(d.rows(2, NOW).map((r) => r.day)).toEqual(['2026-11-10', '2026-11-09']);
    expect(d.rows(1, NOW)[0]).toMatchObject({ modality: 'MR', uploadLatencyMsAvg: 100, uploadLatencyMsMax: 200 });
  });
});
