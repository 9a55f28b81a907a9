// Time windows are local wall-clock time, so these tests pin the zone (Node re-reads TZ when it is
// assigned) and check instants around midnight and both DST transitions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOpen, nextOpening, type TimeWindow } from '../../../../appliance/uplink/windows.ts';

const savedTz = process.env.TZ;
function zone(tz: string): void {
  process.env.TZ = tz;
}
beforeAll(() => zone('Europe/Berlin'));
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

// Local wall time in the zone under test (2025-06-02 is a Monday).
const at = (y: number, mo: number, d: number, h = 0, mi = 0) => new Date(y, mo - 1, d, h, mi);
const iso = (date: Date | undefined) => date?.toISOString();

const weeknights: TimeWindow[] = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '19:00', to: '07:00' }];

describe('isOpen', () => {
  it('runs in the zone it was given', () => {
    expect(at(2025, 6, 2, 12).toISOString()).toBe('2025-06-02T10:00:00.000Z');
  });

  it('a window crossing midnight belongs to the day it opens', () => {
    expect(isOpen(weeknights, at(2025, 6, 2, 18, 59))).toBe(false);
    expect(isOpen(weeknights, at(2025, 6, 2, 19, 0))).toBe(true);
    expect(isOpen(weeknights, at(2025, 6, 2, 23, 59))).toBe(true);
    expect(isOpen(weeknights, at(2025, 6, 3, 3, 0))).toBe(true);
    expect(isOpen(weeknights, at(2025, 6, 3, 6, 59))).toBe(true);
    expect(isOpen(weeknights, at(2025, 6, 3, 7, 0))).toBe(false);
    // Monday 02:00 is the tail of Sunday night, and Sunday is not listed.
    expect(isOpen(weeknights, at(2025, 6, 2, 2, 0))).toBe(false);
    // Saturday 03:00 is the tail of Friday night.
    expect(isOpen(weeknights, at(2025, 6, 7, 3, 0))).toBe(true);
    expect(isOpen(weeknights, at(2025, 6, 7, 19, 30))).toBe(false);
  });

  it('from == to is a whole day; 24:00 ends at midnight; no days means every day; several windows add up', () => {
    const weekend: TimeWindow[] = [{ days: ['sat', 'sun'], from: '00:00', to: '00:00' }];
    expect(isOpen(weekend, at(2025, 6, 6, 23, 59))).toBe(false);
    expect(isOpen(weekend, at(2025, 6, 7, 0, 0))).toBe(true);
    expect(isOpen(weekend, at(2025, 6, 8, 23, 59))).toBe(true);
    expect(isOpen(weekend, at(2025, 6, 9, 0, 0))).toBe(false);
    const evening: TimeWindow[] = [{ from: '20:00', to: '24:00' }];
    expect(isOpen(evening, at(2025, 6, 4, 23, 59))).toBe(true);
    expect(isOpen(evening, at(2025, 6, 5, 0, 0))).toBe(false);
    expect(isOpen([...weeknights, ...weekend], at(2025, 6, 8, 12))).toBe(true);
    expect(isOpen([...weeknights, ...weekend], at(2025, 6, 4, 12))).toBe(false);
  });

  it('no windows at all means no restriction', () => {
    expect(isOpen([], at(2025, 6, 4, 12))).toBe(true);
    expect(nextOpening([], at(2025, 6, 4, 12))).toEqual(at(2025, 6, 4, 12));
  });

  it('refuses malformed windows with the offending value', () => {
    expect(() => isOpen([{ from: '7:00', to: '08:00' }], new Date())).toThrow(/from "7:00": expected HH:MM/);
    expect(() => isOpen([{ from: '24:00', to: '08:00' }], new Date())).toThrow(/from "24:00"/);
    expect(() => isOpen([{ from: '07:00', to: '08:60' }], new Date())).toThrow(/to "08:60"/);
    expect(() => isOpen([{ days: ['monday' as 'mon'], from: '07:00', to: '08:00' }], new Date())).toThrow(/day "monday"/);
  });
});

describe('nextOpening', () => {
  it('is the date itself when open, else the next opening, skipping days not listed', () => {
    expect(nextOpening(weeknights, at(2025, 6, 3, 3))).toEqual(at(2025, 6, 3, 3));
    expect(nextOpening(weeknights, at(2025, 6, 3, 10))).toEqual(at(2025, 6, 3, 19));
    // Saturday morning: next is Monday evening.
    expect(nextOpening(weeknights, at(2025, 6, 7, 8))).toEqual(at(2025, 6, 9, 19));
    const weekly: TimeWindow[] = [{ days: ['wed'], from: '01:00', to: '02:00' }];
    // Wednesday 03:00: next Wednesday, seven days on.
    expect(nextOpening(weekly, at(2025, 6, 4, 3))).toEqual(at(2025, 6, 11, 1));
  });

  it('is undefined when no window ever opens', () => {
    expect(nextOpening([{ days: [], from: '01:00', to: '02:00' }], at(2025, 6, 4, 3))).toBeUndefined();
  });

  it('spring forward (Berlin, 2025-03-30 02:00 -> 03:00): wall time rules, gaps open at the jump', () => {
    const night: TimeWindow[] = [{ from: '19:00', to: '07:00' }];
    // The night is an hour shorter in real time but ends at 07:00 on the clock.
    expect(isOpen(night, new Date('2025-03-30T04:59:00Z'))).toBe(true); // 06:59 CEST
    expect(isOpen(night, new Date('2025-03-30T05:00:00Z'))).toBe(false); // 07:00 CEST
    const inGap: TimeWindow[] = [{ from: '02:30', to: '04:00' }];
    // 02:30 does not exist that day; the window is open from 03:00 CEST, the first instant after the jump.
    expect(iso(nextOpening(inGap, new Date('2025-03-29T23:30:00Z')))).toBe('2025-03-30T01:00:00.000Z');
    // A window wholly inside the gap does not open that day; the next day it does, at 02:00 CEST.
    const wholly: TimeWindow[] = [{ from: '02:00', to: '03:00' }];
    expect(iso(nextOpening(wholly, new Date('2025-03-29T23:30:00Z')))).toBe('2025-03-31T00:00:00.000Z');
  });

  it('fall back (Berlin, 2025-10-26 03:00 -> 02:00): the repeated hour is open twice, opening is the first', () => {
    const w: TimeWindow[] = [{ from: '02:00', to: '02:30' }];
    expect(isOpen(w, new Date('2025-10-26T00:15:00Z'))).toBe(true); // 02:15 CEST
    expect(isOpen(w, new Date('2025-10-26T00:45:00Z'))).toBe(false); // 02:45 CEST
    expect(isOpen(w, new Date('2025-10-26T01:15:00Z'))).toBe(true); // 02:15 CET
    expect(iso(nextOpening(w, new Date('2025-10-25T22:00:00Z')))).toBe('2025-10-26T00:00:00.000Z');
  });

  it('a zone whose midnight does not exist (Santiago, 2025-09-07 00:00 -> 01:00)', () => {
    zone('America/Santiago');
    try {
      const sunday: TimeWindow[] = [{ days: ['sun'], from: '00:00', to: '06:00' }];
      // Saturday 23:00 -04:00; Sunday starts at 01:00 -03:00 = 04:00Z.
      expect(iso(nextOpening(sunday, new Date('2025-09-07T03:00:00Z')))).toBe('2025-09-07T04:00:00.000Z');
    } finally {
      zone('Europe/Berlin');
    }
  });
});
