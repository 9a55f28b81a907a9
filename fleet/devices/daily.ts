// Daily figures for GET /api/stats. A box resends today's and yesterday's running totals in every
// telemetry message, so the fleet keeps each device's latest numbers for its recent days only and
// folds them into one fleet-wide sum per day × modality × clinic: a device's change replaces its
// previous contribution (subtract old, add new). Memory is a few numbers per device, not per day.
import type { StatsRow } from '../../shared/fleet/api.ts';
import type { DailyFigures } from '../../shared/fleet/messages.ts';

/** studies, instances, bytesReceived, bytesSent, bytesFiltered, latency count, sum, max. */
export type DayTuple = [number, number, number, number, number, number, number, number];
/** One device's figures for one day, by modality. */
export type DeviceDay = Record<string, DayTuple>;
export interface StoredDay {
  clinic: string;
  figures: DeviceDay;
}

/** Days (by date string) before today − RECENT_DAYS are final: a late report for them is ignored. */
export const RECENT_DAYS = 3;

const tupleOf = (d: DailyFigures): DayTuple => [
  d.studies,
  d.instances,
  d.bytesReceived,
  d.bytesSent,
  d.bytesFiltered,
  d.uploadLatencyMs.count,
  d.uploadLatencyMs.sum,
  d.uploadLatencyMs.max,
];

export function dayString(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function addDays(day: string, n: number): string {
  return dayString(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000);
}

function sameDay(a: StoredDay, b: StoredDay): boolean {
  if (a.clinic !== b.clinic) return false;
  const ka = Object.keys(a.figures);
  if (ka.length !== Object.keys(b.figures).length) return false;
  for (const m of ka) {
    const x = a.figures[m];
    const y = b.figures[m];
    if (!x || !y || x.some((v, i) => v !== y[i])) return false;
  }
  return true;
}

export class DailyStats {
  /** day → `modality\0clinic` → summed tuple (max is the max). */
  private readonly fleet = new Map<string, Map<string, DayTuple>>();
  /** device → day → its current contribution. */
  private readonly recent = new Map<string, Map<string, StoredDay>>();

  /** Restores one stored contribution at open. */
  load(deviceId: string, day: string, stored: StoredDay, nowMs: number): void {
    this.add(day, stored, 1);
    if (day >= addDays(dayString(nowMs), -RECENT_DAYS)) this.recentOf(deviceId).set(day, stored);
  }

  /** Applies a device's latest report; returns the days whose contribution changed (to persist). */
  apply(deviceId: string, clinic: string, daily: readonly DailyFigures[], nowMs: number): Array<{ day: string; stored: StoredDay }> {
    if (daily.length === 0) return [];
    const minDay = addDays(dayString(nowMs), -RECENT_DAYS);
    const byDay = new Map<string, DeviceDay>();
    for (const d of daily) {
      if (d.day < minDay) continue;
      const figures = byDay.get(d.day) ?? {};
      figures[d.modality] = tupleOf(d);
      byDay.set(d.day, figures);
    }
    const mine = this.recentOf(deviceId);
    const changed: Array<{ day: string; stored: StoredDay }> = [];
    for (const [day, figures] of byDay) {
      const next: StoredDay = { clinic, figures };
      const prev = mine.get(day);
      if (prev && sameDay(prev, next)) continue;
      if (prev) this.add(day, prev, -1);
      this.add(day, next, 1);
      mine.set(day, next);
      changed.push({ day, stored: next });
    }
    for (const day of mine.keys()) if (day < minDay) mine.delete(day);
    return changed;
  }

  /** Rows for `days` days ending today (fleet clock), newest day first. */
  rows(days: number, nowMs: number): StatsRow[] {
    const from = addDays(dayString(nowMs), -(days - 1));
    const out: StatsRow[] = [];
    for (const [day, byKey] of this.fleet) {
      if (day < from) continue;
      for (const [key, t] of byKey) {
        const [modality = '', clinic = ''] = key.split('\0');
        out.push({
          day,
          modality,
          clinic,
          studies: t[0],
          instances: t[1],
          bytesReceived: t[2],
          bytesSent: t[3],
          bytesFiltered: t[4],
          uploadLatencyMsAvg: t[5] > 0 ? t[6] / t[5] : null,
          uploadLatencyMsMax: t[5] > 0 ? t[7] : null,
        });
      }
    }
    return out.sort((a, b) => (a.day === b.day ? (a.clinic + a.modality).localeCompare(b.clinic + b.modality) : a.day < b.day ? 1 : -1));
  }

  private recentOf(deviceId: string): Map<string, StoredDay> {
    let m = this.recent.get(deviceId);
    if (!m) this.recent.set(deviceId, (m = new Map()));
    return m;
  }

  private add(day: string, stored: StoredDay, sign: 1 | -1): void {
    let byKey = this.fleet.get(day);
    if (!byKey) this.fleet.set(day, (byKey = new Map()));
    for (const [modality, t] of Object.entries(stored.figures)) {
      const key = `${modality}\0${stored.clinic}`;
      const sum = byKey.get(key) ?? ([0, 0, 0, 0, 0, 0, 0, 0] as DayTuple);
      for (let i = 0; i < 7; i++) sum[i] = Math.max(0, sum[i]! + sign * t[i]!);
      // A maximum cannot be subtracted; within a day a device's max only grows anyway.
      if (sign > 0) sum[7] = Math.max(sum[7], t[7]);
      if (sign < 0 && sum.slice(0, 7).every((v) => v === 0)) byKey.delete(key);
      else byKey.set(key, sum);
    }
  }
}
