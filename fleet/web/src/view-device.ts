// #/devices/:id — one box: summary, alerts, telemetry charts, pipeline figures, config, commands,
// events; group/tags/labels editing and revocation. Refreshes every 5 s without touching what
// the user is editing.
import type { DeviceDetail } from '../../../shared/fleet/api.ts';
import { can } from './access.ts';
import { call, get, seg } from './api.ts';
import { commandsPanel } from './device-commands.ts';
import { configPanel } from './device-config.ts';
import { pipelineFigures, telemetryCharts } from './device-charts.ts';
import { updatePanel } from './device-update.ts';
import { h, replace } from './dom.ts';
import { dateTime, relativeTime } from './format.ts';
import { ask, busy, errorBox, healthBadge, keyValues, onlineDot, section } from './ui.ts';
import { alertList, versionCell } from './view-overview.ts';
import { every, type View, type ViewContext } from './view.ts';

const REFRESH_MS = 5000;

function summary(d: DeviceDetail): HTMLElement {
  const labels = Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  return keyValues([
    ['Status', h('span', null, onlineDot(d.online), d.online ? ' online' : ' offline')],
    ['Health', d.revoked ? h('span', { class: 'badge badge-critical' }, 'revoked') : healthBadge(d.health)],
    ['Group', d.group],
    ['Labels', labels || '—'],
    ['Tags', d.tags.join(', ') || '—'],
    ['Host name', d.hostname ?? '—'],
    ['Firmware', d.firmware ?? '—'],
    ['Last seen', h('time', { datetime: d.lastSeenAt ?? '', title: dateTime(d.lastSeenAt) }, relativeTime(d.lastSeenAt))],
    ['Enrolled', dateTime(d.enrolledAt)],
    ['Certificate', `serial ${d.certSerial}, valid until ${dateTime(d.certNotAfter)}`],
    ['Config desired / reported', versionCell(d)],
  ]);
}

function events(d: DeviceDetail): HTMLElement {
  if (d.events.length === 0) return h('p', { class: 'muted' }, 'No events yet.');
  const sorted = [...d.events].sort((a, b) => b.at.localeCompare(a.at));
  return h(
    'ol',
    { class: 'timeline' },
    sorted.map((e) => h('li', null, h('time', { datetime: e.at }, dateTime(e.at)), h('strong', null, e.event), e.detail ? h('span', { class: 'muted' }, e.detail) : null)),
  );
}

/** Group, tags and labels (operator). Labels as one key=value per line; "clinic" feeds the stats. */
function metadataForm(d: DeviceDetail, id: string, refresh: () => void): HTMLElement {
  const group = h('input', { id: 'm-group', name: 'group', value: d.group, required: true });
  const tags = h('input', { id: 'm-tags', name: 'tags', value: d.tags.join(', ') });
  const labels = h('textarea', { id: 'm-labels', name: 'labels', rows: 3 });
  labels.value = Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join('\n');
  const save = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save');
  const message = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'stack' },
    h('label', { for: 'm-group' }, 'Group'),
    group,
    h('label', { for: 'm-tags' }, 'Tags (comma separated)'),
    tags,
    h('label', { for: 'm-labels' }, 'Labels (key=value, one per line)'),
    labels,
    h('div', { class: 'actions' }, save),
    message,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const labelMap: Record<string, string> = {};
    for (const line of labels.value.split('\n')) {
      const eq = line.indexOf('=');
      if (line.trim() === '') continue;
      if (eq <= 0) return replace(message, errorBox(new Error(`Label line "${line}" is not key=value.`)));
      labelMap[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    const body = { group: group.value.trim(), tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean), labels: labelMap };
    void busy(save, async () => {
      try {
        await call('PATCH', `/api/devices/${seg(id)}`, body);
        replace(message, h('p', { class: 'ok-text' }, 'Saved.'));
        refresh();
      } catch (err) {
        replace(message, errorBox(err));
      }
    });
  });
  return h('details', { class: 'edit' }, h('summary', null, 'Edit group, tags and labels'), form);
}

function revokeButton(id: string, state: HTMLElement, reload: () => Promise<void>): HTMLButtonElement {
  const revoke = h('button', { type: 'button', class: 'btn btn-danger', 'data-action': 'revoke' }, 'Revoke device');
  revoke.addEventListener('click', () => {
    void (async () => {
      const ok = await ask({ title: `Revoke ${id}?`, message: 'Its certificate stops working at once and it is disconnected. It must be enrolled again with a new token.', confirm: 'Revoke', danger: true });
      if (ok === null) return;
      try {
        await busy(revoke, () => call('POST', `/api/devices/${seg(id)}/revoke`));
      } catch (err) {
        replace(state, errorBox(err));
      }
      // After busy() re-enabled the button: the reload disables it for good once revoked.
      await reload();
    })();
  });
  return revoke;
}

export function deviceView(ctx: ViewContext): View {
  const id = ctx.params[0] ?? '';
  let disposed = false;
  const heading = h('h1', null, 'Device ', h('code', null, id));
  const state = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const summaryBox = h('div');
  const alertsBox = h('div');
  const chartsBox = h('div');
  const figuresBox = h('div');
  const eventsBox = h('div');
  const updateBox = h('div');
  const adminBox = h('div', { class: 'actions actions-left' });
  const metaBox = h('div');
  let chartKey = '';
  let load = async (): Promise<void> => undefined;
  const config = configPanel(ctx, id, () => void load());
  const commands = commandsPanel(ctx, id);
  let built = false;

  load = async (): Promise<void> => {
    let d: DeviceDetail;
    try {
      d = await get<DeviceDetail>(`/api/devices/${seg(id)}`);
    } catch (err) {
      if (!disposed) replace(state, errorBox(err));
      return;
    }
    if (disposed) return;
    replace(state);
    replace(summaryBox, summary(d));
    replace(alertsBox, alertList(d.alertList, false));
    // Redraw the charts only when there is a new point, so a hover title is not pulled away.
    const key = `${d.history.length}:${d.history.at(-1)?.at ?? ''}`;
    if (key !== chartKey) {
      chartKey = key;
      replace(chartsBox, telemetryCharts(d));
    }
    replace(figuresBox, pipelineFigures(d));
    replace(eventsBox, events(d));
    replace(updateBox, updatePanel(d));
    config.update(d);
    if (!built) {
      built = true;
      if (can(ctx.me.role, 'device.edit')) replace(metaBox, metadataForm(d, id, () => void load()));
      if (can(ctx.me.role, 'device.revoke')) replace(adminBox, revokeButton(id, state, () => load()));
    }
    const revoke = adminBox.querySelector<HTMLButtonElement>('button[data-action="revoke"]');
    if (revoke && d.revoked) {
      revoke.disabled = true;
      revoke.textContent = 'Revoked';
    }
    await commands.update();
  };

  const el = h(
    'div',
    { class: 'view view-device' },
    h('p', null, h('a', { href: '#/' }, '← Fleet overview')),
    heading,
    state,
    section('Summary', summaryBox, metaBox, adminBox),
    section('Alerts', alertsBox),
    section('Telemetry', chartsBox),
    section('Pipeline and host figures', figuresBox),
    section('Software update', updateBox),
    section('Config', config.el),
    section('Commands', commands.el),
    section('Events', eventsBox),
  );
  const stop = every(REFRESH_MS, load);
  return {
    el,
    dispose() {
      disposed = true;
      stop();
    },
  };
}
