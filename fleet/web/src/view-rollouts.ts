// #/rollouts — every rollout with its state and progress, and (operator) the form that starts one:
// a release, a group, and waves, each a cumulative share or count of the group's boxes with the
// success rate it needs to advance and the failure rate that pauses it at once.
import type { DeviceSummary } from '../../../shared/fleet/api.ts';
import type { ReleaseRecord, RolloutSummary, RolloutView, WaveSpec } from '../../rollouts/schemas.ts';
import { can } from './access.ts';
import { call, get } from './api.ts';
import { h, replace } from './dom.ts';
import { dateTime, relativeTime } from './format.ts';
import { rolloutStateBadge } from './rollout-ui.ts';
import { busy, errorBox, section, table } from './ui.ts';
import { every, type View, type ViewContext } from './view.ts';

const REFRESH_MS = 4000;
const DEFAULT_ROWS: Array<{ kind: 'count' | 'percent'; value: number }> = [
  { kind: 'count', value: 1 },
  { kind: 'percent', value: 10 },
  { kind: 'percent', value: 50 },
  { kind: 'percent', value: 100 },
];

interface WaveRow {
  el: HTMLElement;
  spec(): WaveSpec;
}

function waveRow(index: number, kind: 'count' | 'percent', value: number, onRemove: (row: WaveRow) => void): WaveRow {
  const n = index + 1;
  const kindSel = h('select', { name: `wave-${n}-kind`, 'aria-label': `Wave ${n}: size as` }, h('option', { value: 'count', selected: kind === 'count' }, 'boxes'), h('option', { value: 'percent', selected: kind === 'percent' }, '% of group'));
  const size = h('input', { name: `wave-${n}-size`, type: 'number', min: 1, step: 'any', value, required: true, 'aria-label': `Wave ${n}: size` });
  const success = h('input', { name: `wave-${n}-success`, type: 'number', min: 0, max: 100, step: 'any', value: 100, required: true, 'aria-label': `Wave ${n}: success needed (%)` });
  const failure = h('input', { name: `wave-${n}-failure`, type: 'number', min: 0, max: 100, step: 'any', value: 10, required: true, 'aria-label': `Wave ${n}: failure that pauses (%)` });
  const remove = h('button', { type: 'button', class: 'btn btn-small' }, 'Remove');
  const el = h('div', { class: 'wave-row', 'data-wave': n }, h('span', { class: 'wave-label' }, `Wave ${n}: reach`), size, kindSel, h('span', null, 'advance at ≥'), success, h('span', null, '% success, pause at >'), failure, h('span', null, '% failure'), remove);
  const row: WaveRow = {
    el,
    spec: () => ({
      ...(kindSel.value === 'count' ? { count: Math.round(Number(size.value)) } : { percent: Number(size.value) }),
      successThreshold: Number(success.value) / 100,
      failureThreshold: Number(failure.value) / 100,
    }),
  };
  remove.addEventListener('click', () => onRemove(row));
  return row;
}

function createForm(onCreated: (r: RolloutView) => void): { el: HTMLElement; load(): Promise<void> } {
  const version = h('select', { id: 'ro-version', name: 'version', required: true });
  const group = h('input', { id: 'ro-group', name: 'group', required: true, list: 'ro-groups', autocomplete: 'off' });
  const groups = h('datalist', { id: 'ro-groups' });
  const timeout = h('input', { id: 'ro-timeout', name: 'healthTimeoutMin', type: 'number', min: 1, step: 'any', value: 30 });
  const wavesBox = h('div', { class: 'waves' });
  let rows: WaveRow[] = [];
  const redraw = (): void => replace(wavesBox, rows.map((r) => r.el));
  const removeRow = (row: WaveRow): void => {
    if (rows.length > 1) rows = rows.filter((r) => r !== row);
    redraw();
  };
  rows = DEFAULT_ROWS.map((d, i) => waveRow(i, d.kind, d.value, removeRow));
  redraw();
  const add = h('button', { type: 'button', class: 'btn btn-small' }, 'Add a wave');
  add.addEventListener('click', () => {
    rows.push(waveRow(rows.length, 'percent', 100, removeRow));
    redraw();
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Start rollout');
  const message = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'stack rollout-form', 'aria-label': 'Start a rollout' },
    h('label', { for: 'ro-version' }, 'Release'),
    version,
    h('label', { for: 'ro-group' }, 'Group'),
    group,
    groups,
    h('fieldset', null, h('legend', null, 'Waves (sizes are cumulative)'), wavesBox, add),
    h('label', { for: 'ro-timeout' }, 'Health timeout (minutes without a report counts as failed)'),
    timeout,
    h('div', { class: 'actions actions-left' }, submit),
    message,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { version: version.value, group: group.value.trim(), waves: rows.map((r) => r.spec()), healthTimeoutMs: Math.round(Number(timeout.value) * 60_000) };
    void busy(submit, async () => {
      try {
        const created = await call<RolloutView>('POST', '/api/rollouts', body);
        replace(message);
        onCreated(created);
      } catch (err) {
        replace(message, errorBox(err));
      }
    });
  });
  return {
    el: form,
    async load() {
      const [releases, devices] = await Promise.all([get<ReleaseRecord[]>('/api/releases'), get<DeviceSummary[]>('/api/devices')]);
      replace(version, releases.length ? releases.map((r) => h('option', { value: r.version }, `${r.version} (${r.arch})`)) : h('option', { value: '' }, 'no releases uploaded'));
      replace(groups, [...new Set(devices.map((d) => d.group))].sort().map((g) => h('option', { value: g })));
    },
  };
}

function progress(r: RolloutSummary): string {
  const done = (r.counts['committed'] ?? 0) + (r.counts['rolled-back'] ?? 0) + (r.counts['failed'] ?? 0) + (r.counts['refused'] ?? 0) + (r.counts['skipped'] ?? 0);
  const failed = (r.counts['rolled-back'] ?? 0) + (r.counts['failed'] ?? 0) + (r.counts['refused'] ?? 0);
  return `${r.counts['committed'] ?? 0} committed · ${failed} failed · ${r.boxes - done} open of ${r.boxes}`;
}

export function rolloutsView(ctx: ViewContext): View {
  let disposed = false;
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const load = async (): Promise<void> => {
    try {
      const rollouts = await get<RolloutSummary[]>('/api/rollouts');
      if (disposed) return;
      replace(
        list,
        table(
          'Rollouts',
          ['Rollout', 'Release', 'Group', 'State', 'Wave', 'Boxes', 'Started'],
          rollouts.map((r) => [
            h('a', { href: `#/rollouts/${encodeURIComponent(r.id)}`, 'data-rollout': r.id }, r.id),
            r.version,
            r.group,
            h('span', null, rolloutStateBadge(r.state), r.pauseReason ? h('span', { class: 'muted small' }, ` ${r.pauseReason}`) : null),
            `${Math.min(r.currentWave + 1, r.waves)} of ${r.waves}`,
            progress(r),
            h('span', { title: dateTime(r.createdAt) }, `${relativeTime(r.createdAt)} by ${r.createdBy}`),
          ]),
          'No rollouts yet.',
        ),
      );
    } catch (err) {
      if (!disposed) replace(list, errorBox(err));
    }
  };
  let form: ReturnType<typeof createForm> | null = null;
  if (can(ctx.me.role, 'rollout.create')) {
    form = createForm((r) => {
      location.hash = `#/rollouts/${encodeURIComponent(r.id)}`;
    });
    form.load().catch((err: unknown) => form && form.el.append(errorBox(err)));
  }
  const stop = every(REFRESH_MS, load);
  return {
    el: h('div', { class: 'view view-rollouts' }, h('h1', null, 'Rollouts'), form ? section('New rollout', form.el) : null, section('Rollouts', list)),
    dispose() {
      disposed = true;
      stop();
    },
  };
}
