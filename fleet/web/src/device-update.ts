// The device page's update panel: what the box last reported about updates, the rollout it is in,
// and the releases that failed on it (never offered to it again unless an admin re-approves).
import type { DeviceDetail } from '../../../shared/fleet/api.ts';
import { h } from './dom.ts';
import { bytes, dateTime, relativeTime } from './format.ts';
import { boxStatusBadge, rolloutStateBadge } from './rollout-ui.ts';
import { keyValues, table } from './ui.ts';

export function updatePanel(d: DeviceDetail): HTMLElement {
  const u = d.update;
  if (!u) return h('p', { class: 'muted' }, 'This fleet does not run rollouts.');
  const st = u.status;
  const rows: Array<readonly [string, Parameters<typeof h>[2]]> = [
    ['Running', st?.runningVersion ?? d.firmware ?? '—'],
    [
      'Last update status',
      st
        ? h('span', { 'data-update-phase': st.phase }, boxStatusBadge(st.phase), ` ${st.version ?? ''}`, st.reason ? h('span', { class: 'muted' }, ` — ${st.reason}`) : null, st.progress && st.phase === 'downloading' ? ` (${bytes(st.progress.bytes)} of ${bytes(st.progress.total)})` : null, h('span', { class: 'muted', title: dateTime(st.at) }, ` · ${relativeTime(st.at)}`))
        : 'never reported',
    ],
    [
      'Rollout',
      u.rollout
        ? h('span', null, h('a', { href: `#/rollouts/${encodeURIComponent(u.rollout.id)}` }, u.rollout.id), ` ${u.rollout.version} `, rolloutStateBadge(u.rollout.state), ' box: ', boxStatusBadge(u.rollout.boxStatus), u.rollout.reason ? h('span', { class: 'muted' }, ` ${u.rollout.reason}`) : null)
        : 'none',
    ],
  ];
  return h(
    'div',
    { class: 'update-panel' },
    keyValues(rows),
    u.failedReleases.length
      ? table(
          'Releases that failed on this box',
          ['Release', 'State', 'Reason', 'When', 'Rollout'],
          u.failedReleases.map((f) => [f.version, f.state === 'approved' ? `re-approved by ${f.approvedBy ?? '?'}` : 'failed — not offered again', f.reason, dateTime(f.at), f.rolloutId ?? '—']),
        )
      : null,
  );
}
