// #/stats?days=N — operations over the last 7/14/30 days, from the boxes' daily figures: studies
// by modality, instances by clinic, bytes saved by compression and filtering, upload latency.
import type { StatsRow } from '../../../shared/fleet/api.ts';
import { get, query } from './api.ts';
import { barChart, lineChart } from './chart.ts';
import { h, replace } from './dom.ts';
import { bytes, ms, num, percent } from './format.ts';
import { errorBox, section, table } from './ui.ts';
import type { View, ViewContext } from './view.ts';

const DAY_CHOICES = [7, 14, 30] as const;

/**
 * Every day of the window (so quiet days show as gaps), plus any day the data has outside it.
 * Days are UTC dates, as the fleet cuts its window.
 */
export function dayRange(days: number, rows: readonly StatsRow[], nowMs = Date.now()): string[] {
  const set = new Set(rows.map((r) => r.day));
  for (let i = 0; i < days; i++) set.add(new Date(nowMs - i * 86_400_000).toISOString().slice(0, 10));
  return [...set].sort();
}

/** Sums `pick` per (day, key) into one series per key, in key order. */
function seriesBy(rows: readonly StatsRow[], days: readonly string[], key: (r: StatsRow) => string, pick: (r: StatsRow) => number): { name: string; values: number[] }[] {
  const names = [...new Set(rows.map(key))].sort();
  return names.map((name) => ({
    name,
    values: days.map((day) => rows.filter((r) => r.day === day && key(r) === name).reduce((s, r) => s + pick(r), 0)),
  }));
}

interface DayBytes {
  day: string;
  received: number;
  sent: number;
  filtered: number;
  latencyAvg: number | null;
  latencyMax: number | null;
}

/** Per day over the fleet. Latency average is weighted by instances (rows carry no sample count). */
export function perDay(rows: readonly StatsRow[], days: readonly string[]): DayBytes[] {
  return days.map((day) => {
    const rs = rows.filter((r) => r.day === day);
    const withLatency = rs.filter((r) => r.uploadLatencyMsAvg !== null);
    const weight = withLatency.reduce((s, r) => s + Math.max(1, r.instances), 0);
    return {
      day,
      received: rs.reduce((s, r) => s + r.bytesReceived, 0),
      sent: rs.reduce((s, r) => s + r.bytesSent, 0),
      filtered: rs.reduce((s, r) => s + r.bytesFiltered, 0),
      latencyAvg: weight ? withLatency.reduce((s, r) => s + (r.uploadLatencyMsAvg ?? 0) * Math.max(1, r.instances), 0) / weight : null,
      latencyMax: withLatency.length ? Math.max(...withLatency.map((r) => r.uploadLatencyMsMax ?? r.uploadLatencyMsAvg ?? 0)) : null,
    };
  });
}

const saved = (received: number, sent: number): number | null => (received > 0 ? ((received - sent) / received) * 100 : null);
/** Noon UTC of the day: the same calendar date in every time zone within ±12 h. */
const dayMs = (day: string): number => {
  const [y = 0, m = 1, d = 1] = day.split('-').map(Number);
  return Date.UTC(y, m - 1, d, 12);
};

function render(rows: readonly StatsRow[], days: number): HTMLElement {
  const cats = dayRange(days, rows);
  const daily = perDay(rows, cats);
  const total = daily.reduce((a, d) => ({ received: a.received + d.received, sent: a.sent + d.sent, filtered: a.filtered + d.filtered }), { received: 0, sent: 0, filtered: 0 });
  const tile = (label: string, value: string): HTMLElement => h('div', { class: 'tile' }, h('span', { class: 'tile-value' }, value), h('span', { class: 'tile-label' }, label));
  return h(
    'div',
    null,
    h(
      'div',
      { class: 'tiles' },
      tile('studies', num(rows.reduce((s, r) => s + r.studies, 0))),
      tile('instances', num(rows.reduce((s, r) => s + r.instances, 0))),
      tile('received', bytes(total.received)),
      tile('sent', bytes(total.sent)),
      tile('saved', percent(saved(total.received, total.sent), 1)),
    ),
    h(
      'div',
      { class: 'charts' },
      barChart({ title: 'Studies per day by modality', categories: cats, mode: 'stacked', format: (v) => num(v), series: seriesBy(rows, cats, (r) => r.modality, (r) => r.studies) }),
      barChart({ title: 'Instances per day by clinic', categories: cats, mode: 'stacked', format: (v) => num(v), series: seriesBy(rows, cats, (r) => r.clinic, (r) => r.instances) }),
      barChart({
        title: 'Bytes per day: received, sent, filtered',
        categories: cats,
        mode: 'grouped',
        format: bytes,
        series: [
          { name: 'Received', values: daily.map((d) => d.received) },
          { name: 'Sent (after compression)', values: daily.map((d) => d.sent) },
          { name: 'Kept back by the filter', values: daily.map((d) => d.filtered) },
        ],
      }),
      lineChart({
        title: 'Upload latency per day (received → committed)',
        xDays: true,
        yMin: 0,
        format: ms,
        series: [
          { name: 'Average', points: daily.map((d) => ({ x: dayMs(d.day), y: d.latencyAvg })) },
          { name: 'Maximum', points: daily.map((d) => ({ x: dayMs(d.day), y: d.latencyMax })) },
        ],
      }),
    ),
    section(
      'Bytes saved per day',
      table(
        'Bytes saved per day',
        ['Day', 'Received', 'Sent', 'Filtered', 'Saved'],
        daily.filter((d) => d.received > 0).map((d) => [d.day, bytes(d.received), bytes(d.sent), bytes(d.filtered), percent(saved(d.received, d.sent), 1)]),
        'Nothing received in this period.',
      ),
    ),
  );
}

export function statsView(ctx: ViewContext): View {
  const asked = Number(ctx.query.get('days'));
  const days = (DAY_CHOICES as readonly number[]).includes(asked) ? asked : 14;
  let disposed = false;
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const picker = h(
    'div',
    { class: 'segmented', role: 'group', 'aria-label': 'Period' },
    DAY_CHOICES.map((n) => h('a', { class: 'btn btn-small', href: `#/stats?days=${n}`, 'aria-current': n === days ? 'true' : null }, `${n} days`)),
  );
  get<StatsRow[]>(`/api/stats${query({ days })}`)
    .then((rows) => {
      if (!disposed) replace(body, render(rows, days));
    })
    .catch((err: unknown) => {
      if (!disposed) replace(body, errorBox(err));
    });
  return {
    el: h('div', { class: 'view view-stats' }, h('div', { class: 'view-head' }, h('h1', null, 'Operations statistics'), picker), body),
    dispose() {
      disposed = true;
    },
  };
}
