import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF } from '../../../../appliance/uplink/backoff.ts';

describe('backoff with full jitter', () => {
  it('doubles the ceiling per failure up to the cap', () => {
    const o = { baseMs: 100, capMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffCeiling(n, o))).toEqual([100, 200, 400, 800, 1000, 1000]);
    // Far past 2**1023 the arithmetic overflows to Infinity; the cap still holds.
    expect(backoffCeiling(5000, o)).toBe(1000);
  });

  it('waits uniformly between 0 and the ceiling', () => {
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0 })).toBe(0);
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0.5 })).toBe(200);
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, random: () => 0.999999 })).toBe(399);
    const samples = Array.from({ length: 2000 }, () => backoffDelay(4, { baseMs: 100, capMs: 10_000 }) ?? -1);
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...samples)).toBeLessThan(800);
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    expect(mean).toBeGreaterThan(350);
    expect(mean).toBeLessThan(450);
  });

  it('never gives up by default; a limit counts every attempt, the first included', () => {
    expect(DEFAULT_BACKOFF.maxAttempts).toBe(Number.POSITIVE_INFINITY);
    expect(backoffDelay(1_000_000, { random: () => 0.5 })).toBe(DEFAULT_BACKOFF.capMs / 2);
    expect(backoffDelay(2, { maxAttempts: 3, random: () => 0 })).toBe(0);
    expect(backoffDelay(3, { maxAttempts: 3 })).toBeUndefined();
  });

  it("takes a server's Retry-After as a floor", () => {
    expect(backoffDelay(1, { baseMs: 1000, random: () => 0.5 }, 30_000)).toBe(30_000);
    expect(backoffDelay(8, { baseMs: 1000, random: () => 0.5 }, 10)).toBe(64_000);
  });

  it('undefined options mean defaults; nonsense is refused with the value', () => {
    expect(backoffCeiling(1, { baseMs: undefined, capMs: undefined })).toBe(DEFAULT_BACKOFF.baseMs);
    expect(() => backoffCeiling(0)).toThrow(/attempt must be an integer >= 1, got 0/);
    expect(() => backoffCeiling(1, { baseMs: 0 })).toThrow(/baseMs/);
    expect(() => backoffCeiling(1, { baseMs: 10, capMs: 5 })).toThrow(/capMs \(5\) must be >= baseMs \(10\)/);
    expect(() => backoffDelay(1, { maxAttempts: 0 })).toThrow(/maxAttempts/);
  });
});
