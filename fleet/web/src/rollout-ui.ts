// Pieces the release and rollout pages share: status badges and the per-wave progress chart (one
// horizontal stacked bar per wave, drawn as SVG like chart.ts, every segment with a <title>).
import type { RolloutView } from '../../rollouts/schemas.ts';
import { h, s } from './dom.ts';

const ACTIVE = new Set(['offered', 'downloading', 'verifying', 'installing', 'restarting', 'health-check']);
const FAILED = new Set(['rolled-back', 'refused', 'failed']);

export function boxStatusBadge(status: string): HTMLElement {
  const cls = status === 'committed' ? 'badge-ok' : FAILED.has(status) ? 'badge-critical' : ACTIVE.has(status) ? 'badge-pending' : 'badge-unknown';
  return h('span', { class: `badge ${cls}`, 'data-status': status }, status);
}

export function rolloutStateBadge(state: string): HTMLElement {
  const cls = { running: 'badge-pending', paused: 'badge-warning', completed: 'badge-ok', aborted: 'badge-critical' }[state] ?? 'badge-unknown';
  return h('span', { class: `badge ${cls}`, 'data-state': state }, state);
}

/** Okabe–Ito colours with a meaning each (and a legend, so colour is never the only cue). */
const SEGMENTS = [
  { key: 'committed', label: 'Committed', colour: '#009E73' },
  { key: 'active', label: 'In progress', colour: '#0072B2' },
  { key: 'failed', label: 'Failed / rolled back', colour: '#D55E00' },
  { key: 'pending', label: 'Not offered', colour: '#999999' },
  { key: 'skipped', label: 'Skipped', colour: '#CC79A7' },
] as const;

type SegmentKey = (typeof SEGMENTS)[number]['key'];

function segmentsOf(view: RolloutView, wave: number): Record<SegmentKey, number> {
  const out: Record<SegmentKey, number> = { committed: 0, active: 0, failed: 0, pending: 0, skipped: 0 };
  for (const b of view.boxes) {
    if (b.wave !== wave) continue;
    if (b.status === 'committed') out.committed++;
    else if (ACTIVE.has(b.status)) out.active++;
    else if (FAILED.has(b.status)) out.failed++;
    else if (b.status === 'skipped') out.skipped++;
    else out.pending++;
  }
  return out;
}

const pct = (x: number | null): string => (x === null ? '—' : `${(x * 100).toFixed(0)} %`);

export function waveChart(view: RolloutView): HTMLElement {
  // Wide viewBox: the figure spans the page, so its 12-unit labels stay near the text size.
  const W = 900;
  const row = 34;
  const left = 80;
  const right = 260;
  const H = view.waves.length * row + 8;
  const svg = s('svg', { class: 'chart-svg wave-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Progress per wave' });
  view.waves.forEach((w, i) => {
    const t = view.tallies[i];
    if (!t) return;
    const y = 4 + i * row;
    const current = i === view.currentWave && view.state !== 'completed';
    svg.append(s('text', { class: 'tick', x: 4, y: y + 19 }, `Wave ${i + 1}${current ? ' ◂' : ''}`));
    const segs = segmentsOf(view, i);
    const width = W - left - right;
    let x = left;
    svg.append(s('rect', { class: 'wave-track', x: left, y: y + 4, width, height: 22, rx: 3 }));
    for (const seg of SEGMENTS) {
      const n = segs[seg.key];
      if (n === 0 || w.size === 0) continue;
      const sw = (n / w.size) * width;
      const rect = s('rect', { class: 'bar', x: x.toFixed(1), y: y + 4, width: Math.max(1, sw).toFixed(1), height: 22, fill: seg.colour, 'data-wave': i, 'data-segment': seg.key });
      rect.append(s('title', null, `Wave ${i + 1} · ${seg.label}: ${n} of ${w.size}`));
      svg.append(rect);
      x += sw;
    }
    const figures = w.size === 0 ? 'no boxes' : `${t.committed} of ${t.counted} ok · ${t.failures} failed (${pct(t.failureRate)})`;
    const label = s('text', { class: 'tick', x: W - right + 8, y: y + 19 }, figures);
    label.append(s('title', null, `Wave ${i + 1}: advances at ≥ ${pct(w.successThreshold)} success, pauses at > ${pct(w.failureThreshold)} failure`));
    svg.append(label);
  });
  return h(
    'figure',
    { class: 'chart', 'data-chart': 'waves' },
    h('figcaption', null, 'Progress per wave'),
    svg,
    h(
      'ul',
      { class: 'legend' },
      SEGMENTS.map((seg) => h('li', null, s('svg', { width: 12, height: 12, viewBox: '0 0 12 12', 'aria-hidden': 'true' }, s('rect', { width: 12, height: 12, rx: 2, fill: seg.colour })), seg.label)),
    ),
  );
}
