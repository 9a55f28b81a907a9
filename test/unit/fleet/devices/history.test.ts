// The telemetry history ring: bounded, oldest first, nulls kept, and a byte-exact round trip
// through its persisted form.
import { describe, expect, it } from 'vitest';
import { HistoryRing, POINT_BYTES, pointOf } from '../../../../fleet/devices/history.ts';
import { telemetry } from './fixtures.ts';

const T0 = Date.parse('2026-11-10T00:00:00.000Z');

describe('HistoryRing', () => {
  it('keeps the newest points up to its capacity, oldest first', () => {
    const ring = new HistoryRing(5);
    expect(ring.points()).toEqual([]);
    for (let i = 0; i < 8; i++) ring.push({ atS: T0 / 1000 + i, cpu: i, mem: null, disk: 50.25, queue: i, age: i === 7 ? 12.5 : null });
    const pts = ring.points();
    expect(pts.map((p) => p.queue)).toEqual([3, 4, 5, 6, 7]);
    expect(pts.at(-1)).toEqual({ at: new Date(T0 + 7000).toISOString(), cpu: 7, mem: null, disk: 50.25, queue: 7, oldestQueuedAgeS: 12.5 });
    expect(ring.points(2).map((p) => p.queue)).toEqual([6, 7]);
  });

  it('round-trips through encode/decode, also into a smaller ring', () => {
    const ring = new HistoryRing(10);
    for (let i = 0; i < 4; i++) ring.push(pointOf(telemetry({ at: new Date(T0 + i * 10_000).toISOString(), queue: i, disk: i === 2 ? null : 10 + i }), 0));
    const bytes = ring.encode();
    expect(bytes.byteLength).toBe(4 * POINT_BYTES);
    expect(HistoryRing.decode(bytes, 10).points()).toEqual(ring.points());
    expect(HistoryRing.decode(bytes, 2).points().map((p) => p.queue)).toEqual([2, 3]);
    expect(HistoryRing.decode(new Uint8Array(0)).points()).toEqual([]);
  });

  it('derives memory percent and falls back to the arrival time for a bad timestamp', () => {
    const p = pointOf(telemetry({ at: 'not a date at all' }), T0);
    expect(p).toMatchObject({ atS: T0 / 1000, mem: 50, cpu: 12.5 });
  });
});
