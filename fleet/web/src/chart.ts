// Two small SVG charts: lines over time and bars per day (stacked or side by side). Each mark
// carries a <title>, so hovering shows the exact figure; each chart has a legend. Sizes are in
// viewBox units and the SVG scales to its container; the viewBox is narrower on a narrow screen so
// that the labels keep a legible size instead of shrinking with the drawing.
import { h, s } from './dom.ts';

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#999999'];
export const colour = (i: number): string => PALETTE[i % PALETTE.length] ?? '#999999';

const H = 240;
const M = { top: 12, right: 14, bottom: 30, left: 58 };
const PH = H - M.top - M.bottom;

/** Drawing width in viewBox units: 640 on a desktop, down to 300 on a phone. */
function chartWidth(): number {
  const viewport = document.documentElement.clientWidth || 640;
  return Math.round(Math.min(640, Math.max(300, viewport - 64)));
}

/** Round tick values covering [min, max]: steps of 1, 2 or 5 × 10^k. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((f) => f * mag >= raw) ?? 10) * mag;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if ((ticks.at(-1) ?? min) < max) ticks.push(Number(((ticks.at(-1) ?? min) + step).toPrecision(12)));
  return ticks;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');
function timeLabel(t: number, spanMs: number): string {
  const d = new Date(t);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  // Seconds only when the whole span is a few minutes, or the labels would repeat.
  if (spanMs <= 15 * 60_000) return `${hm}:${pad2(d.getSeconds())}`;
  return spanMs <= 36 * 3600_000 ? hm : `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}
function fullTime(t: number): string {
  const d = new Date(t);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function legend(names: readonly string[]): HTMLElement {
  return h(
    'ul',
    { class: 'legend' },
    names.map((name, i) =>
      h('li', null, s('svg', { width: 12, height: 12, viewBox: '0 0 12 12', 'aria-hidden': 'true' }, s('rect', { width: 12, height: 12, rx: 2, fill: colour(i) })), name),
    ),
  );
}

function frame(title: string, svg: SVGSVGElement, names: readonly string[], empty: boolean): HTMLElement {
  return h(
    'figure',
    { class: 'chart', 'data-chart': title },
    h('figcaption', null, title),
    empty ? h('p', { class: 'muted chart-empty' }, 'No data yet.') : svg,
    empty ? null : legend(names),
  );
}

function yAxis(svg: SVGSVGElement, W: number, ticks: readonly number[], y: (v: number) => number, format: (v: number) => string): void {
  for (const t of ticks) {
    const yy = y(t);
    svg.append(
      s('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: yy, y2: yy }),
      s('text', { class: 'tick', x: M.left - 6, y: yy + 4, 'text-anchor': 'end' }, format(t)),
    );
  }
}

export interface LineSeries {
  name: string;
  /** x: epoch milliseconds; y null = a gap. */
  points: readonly { x: number; y: number | null }[];
}

export interface LineChartSpec {
  title: string;
  series: readonly LineSeries[];
  format: (v: number) => string;
  /** Fixed axis ends (e.g. 0–100 for percentages); otherwise from the data, from 0. */
  yMin?: number;
  yMax?: number;
  /** Labels for x: time of day/date, or the date only for daily figures. */
  xDays?: boolean;
}

export function lineChart(spec: LineChartSpec): HTMLElement {
  const all = spec.series.flatMap((sr) => sr.points);
  const ys = all.flatMap((p) => (p.y === null ? [] : [p.y]));
  const W = chartWidth();
  const PW = W - M.left - M.right;
  const svg = s('svg', { class: 'chart-svg', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  if (ys.length === 0) return frame(spec.title, svg, [], true);
  let x0 = Math.min(...all.map((p) => p.x));
  let x1 = Math.max(...all.map((p) => p.x));
  if (x1 === x0) {
    x0 -= 60_000;
    x1 += 60_000;
  }
  const ticks = niceTicks(spec.yMin ?? Math.min(0, ...ys), spec.yMax ?? Math.max(...ys));
  const yLo = ticks[0] ?? 0;
  const yHi = ticks.at(-1) ?? 1;
  const x = (v: number): number => M.left + ((v - x0) / (x1 - x0)) * PW;
  const y = (v: number): number => M.top + PH - ((v - yLo) / (yHi - yLo)) * PH;
  yAxis(svg, W, ticks, y, spec.format);
  const span = x1 - x0;
  const steps = W >= 480 ? 4 : 2;
  for (let i = 0; i <= steps; i++) {
    const t = x0 + (span * i) / steps;
    svg.append(s('text', { class: 'tick', x: x(t), y: H - 10, 'text-anchor': i === 0 ? 'start' : i === steps ? 'end' : 'middle' }, spec.xDays ? timeLabel(t, Infinity) : timeLabel(t, span)));
  }
  spec.series.forEach((sr, i) => {
    const pts = [...sr.points].sort((a, b) => a.x - b.x);
    let d = '';
    let pen = false;
    let drawn = 0;
    for (const p of pts) {
      if (p.y === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`;
      pen = true;
      drawn++;
    }
    const path = s('path', { class: 'line', d, fill: 'none', stroke: colour(i), 'stroke-width': 2, 'data-series': sr.name, 'data-points': drawn });
    path.append(s('title', null, sr.name));
    svg.append(path);
    // Hover marks: visible dots for a few points, invisible hover targets for a dense line; past a
    // few hundred they only add weight, and the line's own title remains.
    if (pts.length <= 300) {
      const cls = pts.length <= 40 ? 'mark' : 'mark mark-quiet';
      for (const p of pts) {
        if (p.y === null) continue;
        const when = spec.xDays ? fullTime(p.x).slice(0, 10) : fullTime(p.x);
        svg.append(s('circle', { class: cls, cx: x(p.x), cy: y(p.y), r: 3, fill: colour(i) }, s('title', null, `${sr.name} · ${when}: ${spec.format(p.y)}`)));
      }
    }
  });
  return frame(spec.title, svg, spec.series.map((sr) => sr.name), false);
}

export interface BarSeries {
  name: string;
  /** One value per category. */
  values: readonly number[];
}

export interface BarChartSpec {
  title: string;
  /** Usually days, YYYY-MM-DD. */
  categories: readonly string[];
  series: readonly BarSeries[];
  format: (v: number) => string;
  /** stacked: one bar per category; grouped: one bar per series side by side. */
  mode: 'stacked' | 'grouped';
  categoryLabel?: (c: string) => string;
}

export function barChart(spec: BarChartSpec): HTMLElement {
  const W = chartWidth();
  const PW = W - M.left - M.right;
  const svg = s('svg', { class: 'chart-svg', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  const n = spec.categories.length;
  const valueAt = (sr: BarSeries, c: number): number => Math.max(0, sr.values[c] ?? 0);
  const totals = spec.categories.map((_, c) => spec.series.reduce((sum, sr) => sum + valueAt(sr, c), 0));
  const top = spec.mode === 'stacked' ? Math.max(0, ...totals) : Math.max(0, ...spec.series.flatMap((sr) => spec.categories.map((_, c) => valueAt(sr, c))));
  if (n === 0 || spec.series.length === 0 || top === 0) return frame(spec.title, svg, [], true);
  const ticks = niceTicks(0, top);
  const yHi = ticks.at(-1) ?? 1;
  const y = (v: number): number => M.top + PH - (v / yHi) * PH;
  yAxis(svg, W, ticks, y, spec.format);
  const slot = PW / n;
  const barW = Math.max(2, slot * 0.7);
  const every = Math.ceil(n / Math.max(3, Math.floor(PW / 56)));
  const label = spec.categoryLabel ?? ((c: string) => c.slice(5));
  spec.categories.forEach((cat, c) => {
    const left = M.left + slot * c + (slot - barW) / 2;
    if (c % every === 0) svg.append(s('text', { class: 'tick', x: left + barW / 2, y: H - 10, 'text-anchor': 'middle' }, label(cat)));
    let base = 0;
    spec.series.forEach((sr, i) => {
      const v = valueAt(sr, c);
      if (v === 0) return;
      const w = spec.mode === 'stacked' ? barW : barW / spec.series.length;
      const bx = spec.mode === 'stacked' ? left : left + w * i;
      const lo = spec.mode === 'stacked' ? base : 0;
      const rect = s('rect', { class: 'bar', x: bx.toFixed(1), y: y(lo + v).toFixed(1), width: Math.max(1, w - 0.5).toFixed(1), height: Math.max(0.5, y(lo) - y(lo + v)).toFixed(1), fill: colour(i), 'data-series': sr.name, 'data-category': cat });
      rect.append(s('title', null, `${cat} · ${sr.name}: ${spec.format(v)}${spec.mode === 'stacked' ? ` (total ${spec.format(totals[c] ?? 0)})` : ''}`));
      svg.append(rect);
      if (spec.mode === 'stacked') base += v;
    });
  });
  return frame(spec.title, svg, spec.series.map((sr) => sr.name), false);
}
