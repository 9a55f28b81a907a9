// When a destination may be sent to: clinics often allow bulk uploads only at night or at the
// weekend. Windows are in the box's local wall-clock time, because that is how the clinic states
// them ("19:00 to 07:00"), and a window whose `to` is not after its `from` runs past midnight into
// the next day. Pure functions: whether urgent traffic may ignore the windows is the caller's call.

export type Weekday = 'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat';

export interface TimeWindow {
  /** Days the window opens on (a window past midnight closes the day after); default every day. */
  days?: Weekday[];
  /** Opening time, 'HH:MM' 00:00-23:59. */
  from: string;
  /** Closing time, 'HH:MM' 00:00-24:00; equal to `from` means 24 hours. */
  to: string;
}

const WEEKDAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_MINUTES = 24 * 60;

interface Parsed {
  days: ReadonlySet<number>;
  from: number;
  /** Minutes after the opening day's midnight; above DAY_MINUTES when past midnight. */
  until: number;
}

function parseTime(value: string, field: string, allow24: boolean): number {
  const m = /^(\d{2}):(\d{2})$/.exec(value);
  const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
  const ok = m !== null && Number(m[2]) < 60 && (minutes < DAY_MINUTES || (allow24 && minutes === DAY_MINUTES));
  if (!ok) throw new Error(`time window ${field} ${JSON.stringify(value)}: expected HH:MM between 00:00 and ${allow24 ? '24:00' : '23:59'}`);
  return minutes;
}

function parse(w: TimeWindow): Parsed {
  const days = new Set<number>();
  for (const d of w.days ?? WEEKDAYS) {
    const i = WEEKDAYS.indexOf(d);
    if (i < 0) throw new Error(`time window day ${JSON.stringify(d)}: expected one of ${WEEKDAYS.join(', ')}`);
    days.add(i);
  }
  const from = parseTime(w.from, 'from', false);
  const to = parseTime(w.to, 'to', true);
  return { days, from, until: to > from ? to : to + DAY_MINUTES };
}

/** Local weekday and minute of the day, the only things a window looks at. */
function wallClock(date: Date): { day: number; minute: number } {
  return { day: date.getDay(), minute: date.getHours() * 60 + date.getMinutes() };
}

function openAt(windows: readonly Parsed[], date: Date): boolean {
  const { day, minute } = wallClock(date);
  const yesterday = (day + 6) % 7;
  return windows.some(
    (w) =>
      (w.days.has(day) && minute >= w.from && minute < w.until) ||
      // The tail of a window that opened yesterday and runs past midnight.
      (w.days.has(yesterday) && minute + DAY_MINUTES < w.until),
  );
}

/** True when `date` falls inside a window. No windows at all means no restriction. */
export function isOpen(windows: readonly TimeWindow[], date: Date): boolean {
  return windows.length === 0 || openAt(windows.map(parse), date);
}

/**
 * `date` itself when open; otherwise the first later instant at which a window opens, or undefined
 * when none ever does (every window lists no days).
 */
export function nextOpening(windows: readonly TimeWindow[], date: Date): Date | undefined {
  if (isOpen(windows, date)) return date;
  const parsed = windows.map(parse);
  let best: Date | undefined;
  // A week ahead covers every weekday; one more day covers a `from` earlier than now's time.
  for (let offset = 0; offset <= 7; offset++) {
    for (const w of parsed) {
      const opening = openingOn(date, offset, w);
      if (!opening || opening <= date || !openAt(parsed, opening)) continue;
      if (!best || opening < best) best = opening;
    }
  }
  return best;
}

/** The instant window `w` opens on the local day `offset` days after `date`'s, if it opens that day. */
function openingOn(date: Date, offset: number, w: Parsed): Date | undefined {
  const y = date.getFullYear();
  const mo = date.getMonth();
  const d = date.getDate() + offset;
  const midnight = new Date(y, mo, d);
  if (!w.days.has(midnight.getDay())) return undefined;
  const hh = Math.floor(w.from / 60);
  const mm = w.from % 60;
  const at = new Date(y, mo, d, hh, mm);
  if (at.getHours() === hh && at.getMinutes() === mm) return at;
  // `from` fell into a spring-forward gap: Date moved it past the gap, but the window is already
  // open from the first instant after the jump. Find that instant, to the minute.
  return firstInstantAtOrAfter(y, mo, d, w.from, at);
}

function firstInstantAtOrAfter(y: number, mo: number, d: number, fromMinute: number, upper: Date): Date {
  const dayStart = new Date(y, mo, d).getTime();
  const reached = (t: number): boolean => {
    const x = new Date(t);
    return x.getDate() === upper.getDate() && x.getHours() * 60 + x.getMinutes() >= fromMinute;
  };
  // Wall time within one day only moves forward, so `reached` flips once: bisect on whole minutes.
  let lo = Math.floor((Math.max(dayStart, upper.getTime() - 3 * 3_600_000) - dayStart) / 60_000);
  let hi = Math.floor((upper.getTime() - dayStart) / 60_000);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (reached(dayStart + mid * 60_000)) hi = mid;
    else lo = mid + 1;
  }
  return new Date(dayStart + hi * 60_000);
}
