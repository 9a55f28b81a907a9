// #/rollouts/:id — one rollout: state (and why it paused), Pause / Resume / Abort (operator),
// progress per wave, every box with its status and reason (Retry for an admin where the release
// failed on the box), and the timeline. Refreshes every 3 s.
import type { RolloutBox, RolloutView } from '../../rollouts/schemas.ts';
import { can } from './access.ts';
import { call, get, seg } from './api.ts';
import { h, replace } from './dom.ts';
import { dateTime, relativeTime } from './format.ts';
import { boxStatusBadge, rolloutStateBadge, waveChart } from './rollout-ui.ts';
import { ask, busy, errorBox, keyValues, section, table } from './ui.ts';
import { every, type View, type ViewContext } from './view.ts';

const REFRESH_MS = 3000;
const RETRYABLE = new Set(['rolled-back', 'refused', 'failed', 'skipped']);
const ORDER = ['rolled-back', 'failed', 'refused', 'health-check', 'restarting', 'installing', 'verifying', 'downloading', 'offered', 'pending', 'skipped', 'committed'];

function controls(view: RolloutView, state: HTMLElement, reload: () => Promise<void>): HTMLElement[] {
  const make = (verb: 'pause' | 'resume' | 'abort', label: string, enabled: boolean, danger = false): HTMLButtonElement => {
    const b = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn', 'data-action': verb, disabled: !enabled }, label);
    b.addEventListener('click', () => {
      void (async () => {
        if (verb === 'abort') {
          const ok = await ask({ title: `Abort rollout ${view.id}?`, message: 'Offers nobody acted on yet are withdrawn and no box is offered this release by this rollout again.', confirm: 'Abort', danger: true });
          if (ok === null) return;
        }
        try {
          await busy(b, () => call('POST', `/api/rollouts/${seg(view.id)}/${verb}`));
          replace(state);
        } catch (err) {
          replace(state, errorBox(err));
        }
        await reload();
      })();
    });
    return b;
  };
  return [
    make('pause', 'Pause', view.state === 'running'),
    make('resume', 'Resume', view.state === 'paused'),
    make('abort', 'Abort', view.state === 'running' || view.state === 'paused', true),
  ];
}

function retryButton(view: RolloutView, b: RolloutBox, state: HTMLElement, reload: () => Promise<void>): HTMLButtonElement {
  const btn = h('button', { type: 'button', class: 'btn btn-small', 'data-retry': b.deviceId }, 'Retry');
  btn.addEventListener('click', () => {
    void (async () => {
      const ok = await ask({ title: `Offer ${view.version} to ${b.deviceId} again?`, message: `It ${b.status === 'skipped' ? 'was skipped' : b.status} (${b.reason ?? 'no reason given'}). The box refuses a release that failed on it unless re-approved: this approves it for this box.`, confirm: 'Re-approve' });
      if (ok === null) return;
      try {
        await busy(btn, () => call('POST', `/api/rollouts/${seg(view.id)}/devices/${seg(b.deviceId)}/retry`));
      } catch (err) {
        replace(state, errorBox(err));
      }
      await reload();
    })();
  });
  return btn;
}

function boxTable(view: RolloutView, mayRetry: boolean, state: HTMLElement, reload: () => Promise<void>): HTMLElement {
  const rank = (s: string): number => (ORDER.indexOf(s) + ORDER.length) % ORDER.length;
  const sorted = [...view.boxes].sort((a, b) => rank(a.status) - rank(b.status) || a.wave - b.wave || (a.deviceId < b.deviceId ? -1 : 1));
  return table(
    'Boxes of this rollout',
    ['Box', 'Wave', 'Status', 'Reason', 'Progress', 'Updated', ''],
    sorted.map((b) => [
      h('a', { href: `#/devices/${encodeURIComponent(b.deviceId)}` }, b.deviceId),
      b.wave < 0 ? 'done' : String(b.wave + 1),
      boxStatusBadge(b.status),
      b.reason ?? '',
      b.status === 'downloading' && b.progress && b.progress.total > 0 ? `${Math.round((b.progress.bytes / b.progress.total) * 100)} %` : '',
      b.updatedAt ? h('span', { title: dateTime(b.updatedAt) }, relativeTime(b.updatedAt)) : '',
      mayRetry && b.wave >= 0 && RETRYABLE.has(b.status) && view.state !== 'aborted' ? retryButton(view, b, state, reload) : '',
    ]),
    'No boxes.',
  );
}

function timeline(view: RolloutView): HTMLElement {
  const entries = [...view.timeline].reverse().slice(0, 200);
  return h(
    'ol',
    { class: 'timeline' },
    entries.map((e) =>
      h('li', null, h('time', { datetime: e.at }, dateTime(e.at)), h('strong', null, e.event), e.deviceId ? h('code', null, e.deviceId) : null, e.detail ? h('span', { class: 'muted' }, e.detail) : null),
    ),
  );
}

export function rolloutView(ctx: ViewContext): View {
  const id = ctx.params[0] ?? '';
  let disposed = false;
  const state = h('div', { 'aria-live': 'polite' });
  const head = h('div');
  const actions = h('div', { class: 'actions actions-left' });
  const chart = h('div');
  const boxes = h('div');
  const events = h('div');
  const mayControl = can(ctx.me.role, 'rollout.control');
  const mayRetry = can(ctx.me.role, 'rollout.retry');
  let lastKey = '';

  const load = async (): Promise<void> => {
    let view: RolloutView;
    try {
      view = await get<RolloutView>(`/api/rollouts/${seg(id)}`);
    } catch (err) {
      if (!disposed) replace(state, errorBox(err));
      return;
    }
    if (disposed) return;
    replace(
      head,
      keyValues([
        ['State', h('span', null, rolloutStateBadge(view.state), view.pauseReason ? h('span', { class: 'pause-reason' }, ` ${view.pauseReason}`) : null)],
        ['Release', h('a', { href: `#/releases?v=${encodeURIComponent(view.version)}` }, view.version)],
        ['Group', view.group],
        ['Wave', `${Math.min(view.currentWave + 1, view.waves.length)} of ${view.waves.length} (${view.waves.map((w) => w.cumulative).join(' → ')} boxes)`],
        ['Health timeout', `${Math.round(view.healthTimeoutMs / 60_000)} min`],
        ['Started', `${dateTime(view.createdAt)} by ${view.createdBy}`],
      ]),
    );
    if (mayControl) replace(actions, controls(view, state, load));
    // Redraw the table only when something changed, so a click target does not vanish under the pointer.
    const key = `${view.updatedAt}|${view.boxes.map((b) => `${b.status}${b.progress?.bytes ?? ''}`).join(',')}`;
    if (key !== lastKey) {
      lastKey = key;
      replace(chart, waveChart(view));
      replace(boxes, boxTable(view, mayRetry, state, load));
      replace(events, timeline(view));
    }
  };
  const stop = every(REFRESH_MS, load);
  return {
    el: h(
      'div',
      { class: 'view view-rollout' },
      h('p', null, h('a', { href: '#/rollouts' }, '← Rollouts')),
      h('h1', null, 'Rollout ', h('code', null, id)),
      state,
      section('Summary', head, actions),
      section('Progress', chart),
      section('Boxes', boxes),
      section('Timeline', events),
    ),
    dispose() {
      disposed = true;
      stop();
    },
  };
}
