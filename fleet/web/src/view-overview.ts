// #/ — fleet counts, open alerts and the device table with filters. Refreshes every 5 s; the
// filter form is built once and kept (also across visits), only the figures below it change.
import type { Alert, DeviceSummary, FleetOverview } from '../../../shared/fleet/api.ts';
import { get, query } from './api.ts';
import { h, replace } from './dom.ts';
import { relativeTime } from './format.ts';
import { errorBox, healthBadge, onlineDot, section, severityBadge, table } from './ui.ts';
import { every, type View, type ViewContext } from './view.ts';

const REFRESH_MS = 5000;

interface Filters {
  group: string;
  tag: string;
  health: string;
  online: string;
  q: string;
}
// Module state: coming back from a device page finds the filters as they were left.
const filters: Filters = { group: '', tag: '', health: '', online: '', q: '' };
const knownGroups = new Set<string>();
const knownTags = new Set<string>();

const ALERT_KIND_LABEL: Record<string, string> = {
  offline: 'Offline',
  disk: 'Disk',
  'queue-age': 'Queue age',
  'dead-letters': 'Dead letters',
  'config-rejected': 'Config rejected',
  'cert-expiring': 'Certificate',
};

export const deviceLink = (id: string): HTMLAnchorElement => h('a', { href: `#/devices/${encodeURIComponent(id)}` }, id);

export function alertList(alerts: readonly Alert[], withDevice: boolean): HTMLElement {
  if (alerts.length === 0) return h('p', { class: 'muted' }, 'No open alerts.');
  const sorted = [...alerts].sort((a, b) => (a.severity === b.severity ? a.since.localeCompare(b.since) : a.severity === 'critical' ? -1 : 1));
  return h(
    'ul',
    { class: 'alerts' },
    sorted.map((a) =>
      h(
        'li',
        { class: `alert alert-${a.severity}`, 'data-kind': a.kind, 'data-device': a.deviceId },
        severityBadge(a.severity),
        h('span', { class: 'alert-kind' }, ALERT_KIND_LABEL[a.kind] ?? a.kind),
        withDevice ? deviceLink(a.deviceId) : null,
        h('span', { class: 'alert-msg' }, a.message),
        h('time', { datetime: a.since, title: a.since, class: 'muted' }, `since ${relativeTime(a.since)}`),
      ),
    ),
  );
}

function counts(o: FleetOverview): HTMLElement {
  const crit = o.alerts.filter((a) => a.severity === 'critical').length;
  const warn = o.alerts.length - crit;
  const tile = (label: string, value: number, cls = ''): HTMLElement =>
    h('div', { class: `tile ${cls}`, 'data-count': label }, h('span', { class: 'tile-value' }, String(value)), h('span', { class: 'tile-label' }, label));
  return h(
    'div',
    { class: 'tiles' },
    tile('devices', o.devices),
    tile('online', o.online, 'tile-ok'),
    tile('offline', Math.max(0, o.devices - o.online - o.revoked), o.devices - o.online - o.revoked > 0 ? 'tile-warn' : ''),
    tile('critical alerts', crit, crit > 0 ? 'tile-crit' : ''),
    tile('warnings', warn, warn > 0 ? 'tile-warn' : ''),
    o.revoked > 0 ? tile('revoked', o.revoked) : null,
  );
}

export function versionCell(d: Pick<DeviceSummary, 'desiredVersion' | 'reportedVersion'>): HTMLElement {
  const pending = d.desiredVersion !== d.reportedVersion && d.desiredVersion > 0;
  return h(
    'span',
    { class: pending ? 'version pending' : 'version', title: pending ? 'the box has not yet reported the desired version' : 'in sync' },
    `v${d.desiredVersion} / v${d.reportedVersion}`,
    pending ? h('span', { class: 'badge badge-pending' }, 'pending') : null,
  );
}

function deviceRows(devices: readonly DeviceSummary[]): HTMLElement {
  const rows = devices.map((d) => [
    onlineDot(d.online),
    deviceLink(d.id),
    d.group,
    d.labels.clinic ?? '',
    d.tags.join(', '),
    d.revoked ? h('span', { class: 'badge badge-critical' }, 'revoked') : healthBadge(d.health),
    d.alerts > 0 ? String(d.alerts) : '',
    d.firmware ?? '—',
    h('time', { datetime: d.lastSeenAt ?? '', title: d.lastSeenAt ?? 'never' }, relativeTime(d.lastSeenAt)),
    versionCell(d),
  ]);
  return table('Devices', ['', 'Device', 'Group', 'Clinic', 'Tags', 'Health', 'Alerts', 'Firmware', 'Last seen', 'Config desired / reported'], rows, 'No devices match.');
}

function options(select: HTMLSelectElement, values: Iterable<string>, anyLabel: string): void {
  const wanted = ['', ...[...values].sort()];
  const have = [...select.options].map((o) => o.value);
  // Rebuilding an open <select> would close it under the user's pointer: only when choices changed.
  if (wanted.length === have.length && wanted.every((v, i) => v === have[i])) return;
  const keep = select.value;
  replace(select, h('option', { value: '' }, anyLabel), [...values].sort().map((v) => h('option', { value: v }, v)));
  select.value = keep;
}

function filterForm(onChange: () => void): { el: HTMLElement; refreshChoices(): void } {
  const group = h('select', { name: 'group', id: 'f-group' });
  const tag = h('select', { name: 'tag', id: 'f-tag' });
  const health = h('select', { name: 'health', id: 'f-health' }, h('option', { value: '' }, 'any'), ['ok', 'warning', 'critical', 'unknown'].map((v) => h('option', { value: v }, v)));
  const online = h('select', { name: 'online', id: 'f-online' }, h('option', { value: '' }, 'any'), h('option', { value: 'true' }, 'online'), h('option', { value: 'false' }, 'offline'));
  const q = h('input', { type: 'search', name: 'q', id: 'f-q', placeholder: 'id, host, label…', value: filters.q });
  const refreshChoices = (): void => {
    options(group, knownGroups, 'any');
    options(tag, knownTags, 'any');
  };
  refreshChoices();
  for (const [el, key] of [[group, 'group'], [tag, 'tag'], [health, 'health'], [online, 'online']] as const) {
    if (el.querySelector(`option[value="${CSS.escape(filters[key])}"]`) === null && filters[key] !== '') el.append(h('option', { value: filters[key] }, filters[key]));
    el.value = filters[key];
  }
  let debounce: ReturnType<typeof setTimeout> | undefined;
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter devices' },
    h('label', { for: 'f-group' }, 'Group', group),
    h('label', { for: 'f-tag' }, 'Tag', tag),
    h('label', { for: 'f-health' }, 'Health', health),
    h('label', { for: 'f-online' }, 'Online', online),
    h('label', { for: 'f-q' }, 'Search', q),
  );
  form.addEventListener('submit', (ev) => ev.preventDefault());
  form.addEventListener('input', () => {
    Object.assign(filters, { group: group.value, tag: tag.value, health: health.value, online: online.value, q: q.value.trim() });
    clearTimeout(debounce);
    debounce = setTimeout(onChange, 250);
  });
  return { el: form, refreshChoices };
}

export function overviewView(_ctx: ViewContext): View {
  let disposed = false;
  const summary = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const alertsBox = h('div');
  const tableBox = h('div');
  const updated = h('p', { class: 'muted small' });
  let seq = 0;
  const load = async (): Promise<void> => {
    const mine = ++seq;
    try {
      const [overview, devices] = await Promise.all([get<FleetOverview>('/api/overview'), get<DeviceSummary[]>(`/api/devices${query({ ...filters })}`)]);
      // A slower older answer must not overwrite a newer one (filters changed meanwhile).
      if (disposed || mine !== seq) return;
      for (const d of devices) {
        knownGroups.add(d.group);
        for (const t of d.tags) knownTags.add(t);
      }
      form.refreshChoices();
      replace(summary, counts(overview));
      replace(alertsBox, alertList(overview.alerts, true));
      replace(tableBox, deviceRows(devices));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (err) {
      if (!disposed && mine === seq) replace(summary, errorBox(err));
    }
  };
  const form = filterForm(() => void load());
  const el = h(
    'div',
    { class: 'view view-overview' },
    h('h1', null, 'Fleet overview'),
    summary,
    section('Alerts', alertsBox),
    section('Devices', form.el, tableBox, updated),
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
