// #/audit?action=… — the newest audit entries (admin), filtered by action.
import type { AuditEntry } from '../../../shared/fleet/api.ts';
import { get, query } from './api.ts';
import { h, replace } from './dom.ts';
import { dateTime } from './format.ts';
import { errorBox, table } from './ui.ts';
import type { View, ViewContext } from './view.ts';

const LIMIT = 200;

function detailText(detail: AuditEntry['detail']): string {
  if (!detail) return '';
  return Object.entries(detail)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function auditView(ctx: ViewContext): View {
  const action = ctx.query.get('action') ?? '';
  let disposed = false;
  const select = h('select', { id: 'a-action', name: 'action' }, h('option', { value: '' }, 'all actions'));
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  select.addEventListener('change', () => {
    location.hash = `#/audit${query({ action: select.value })}`;
  });
  // Actions for the selector come from an unfiltered read, so every known action can be chosen.
  Promise.all([get<AuditEntry[]>(`/api/audit${query({ limit: LIMIT })}`), action ? get<AuditEntry[]>(`/api/audit${query({ limit: LIMIT, action })}`) : null])
    .then(([all, filtered]) => {
      if (disposed) return;
      const actions = [...new Set([...all.map((e) => e.action), ...(action ? [action] : [])])].sort();
      select.append(...actions.map((a) => h('option', { value: a }, a)));
      select.value = action;
      // Filter here as well: the server may return more than the one action.
      const rows = (filtered ?? all).filter((e) => !action || e.action === action);
      replace(
        body,
        table(
          'Audit log',
          ['When', 'Actor', 'Action', 'Target', 'Outcome', 'Detail'],
          rows.map((e) => [
            h('time', { datetime: e.at }, dateTime(e.at)),
            e.actor,
            h('code', null, e.action),
            e.target ?? '',
            h('span', { class: `badge badge-${e.outcome === 'ok' ? 'ok' : e.outcome === 'refused' ? 'warning' : 'critical'}` }, e.outcome),
            h('span', { class: 'small' }, detailText(e.detail)),
          ]),
          'No audit entries.',
        ),
      );
    })
    .catch((err: unknown) => {
      if (!disposed) replace(body, errorBox(err));
    });
  return {
    el: h(
      'div',
      { class: 'view view-audit' },
      h('div', { class: 'view-head' }, h('h1', null, 'Audit log'), h('form', { class: 'inline-form', role: 'search' }, h('label', { for: 'a-action' }, 'Action', select))),
      body,
    ),
    dispose() {
      disposed = true;
    },
  };
}
