// The token bucket on a fake clock (arithmetic) and on real timers (a second of real streaming).
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { Throttle } from '../../../../appliance/uplink/bandwidth.ts';

function source(total: number, chunk = 64 * 1024): Readable {
  let left = total;
  return new Readable({
    read() {
      const n = Math.min(chunk, left);
      left -= n;
      this.push(n > 0 ? Buffer.alloc(n, 7) : null);
    },
  });
}

/** Streams `total` bytes through `t`, resolving with bytes seen and elapsed ms. */
async function timed(t: Throttle, total: number): Promise<{ bytes: number; ms: number }> {
  let bytes = 0;
  const started = performance.now();
  await pipeline(
    t.throttle(source(total)),
    new Writable({
      write(c: Buffer, _e, done) {
        bytes += c.length;
        done();
      },
    }),
  );
  return { bytes, ms: performance.now() - started };
}

describe('Throttle.reserve (fake clock)', () => {
  it('grants the burst at once, then charges time at the rate, in call order', () => {
    let now = 0;
    const t = new Throttle({ bytesPerSecond: 1000, burstBytes: 500, now: () => now });
    expect(t.reserve(500)).toBe(0);
    expect(t.reserve(250)).toBe(250);
    // A second taker queues behind the first one's debt.
    expect(t.reserve(250)).toBe(500);
    now = 500;
    expect(t.reserve(0)).toBe(0);
    now = 10_000;
    // Refill stops at the burst size, whatever the idle time.
    expect(t.reserve(1000)).toBe(500);
  });

  it('0 and undefined mean unlimited; the rate can change at run time', () => {
    let now = 0;
    const t = new Throttle({ now: () => now });
    expect(t.reserve(1e9)).toBe(0);
    t.setRate(1000, 100);
    expect(t.bytesPerSecond).toBe(1000);
    // Leaving "unlimited" starts from a full bucket, not from the gigabyte just passed.
    expect(t.reserve(100)).toBe(0);
    expect(t.reserve(100)).toBe(100);
    now = 100;
    t.setRate(2000);
    expect(t.reserve(200)).toBe(100);
    t.setRate(0);
    expect(t.reserve(1e6)).toBe(0);
  });

  it('refuses nonsense rates', () => {
    expect(() => new Throttle({ bytesPerSecond: -1 })).toThrow(/bytesPerSecond must be a finite number >= 0, got -1/);
    expect(() => new Throttle().setRate(Number.NaN)).toThrow(/bytesPerSecond/);
    expect(() => new Throttle().setRate(10, Number.POSITIVE_INFINITY)).toThrow(/burstBytes/);
  });
});

describe('Throttle.throttle (real timers)', () => {
  it('holds ~1 s of data at 512 KiB/s to the rate (within 15 %)', async () => {
    const rate = 512 * 1024;
    const t = new Throttle({ bytesPerSecond: rate, burstBytes: 16 * 1024 });
    const total = rate + 16 * 1024;
    const { bytes, ms } = await timed(t, total);
    expect(bytes).toBe(total);
    expect(ms).toBeGreaterThan(1000 * 0.95);
    expect(ms).toBeLessThan(1000 * 1.15);
  });

  it('one bucket shared by two streams splits the rate between them', async () => {
    const rate = 400 * 1024;
    const t = new Throttle({ bytesPerSecond: rate, burstBytes: 8 * 1024 });
    const started = performance.now();
    const each = 200 * 1024;
    const [a, b] = await Promise.all([timed(t, each), timed(t, each)]);
    const ms = performance.now() - started;
    // 400 KiB at 400 KiB/s: ~1 s in all, and neither stream finished far ahead of the other.
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(1200);
    expect(Math.abs(a.ms - b.ms)).toBeLessThan(150);
  });

  it('unlimited passes data straight through; source errors and consumer destruction propagate', async () => {
    const { ms } = await timed(new Throttle(), 20 * 1024 * 1024);
    expect(ms).toBeLessThan(1000);

    const t = new Throttle({ bytesPerSecond: 1024 });
    const broken = new Readable({ read() { this.destroy(new Error('disk read failed')); } });
    const out = t.throttle(broken);
    await expect(pipeline(out, new Writable({ write: (_c, _e, d) => d() }))).rejects.toThrow('disk read failed');

    const src = source(1024 * 1024);
    const slow = t.throttle(src);
    slow.resume();
    slow.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect(src.destroyed).toBe(true);
  });
});
