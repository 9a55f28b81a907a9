// Desired vs reported config of one box, and the editor that pushes a new desired config. The
// server checks the keys (400 with a message); the box checks the values and reports
// 'rejected' or 'failed' with its reason, which shows here once it arrives.
import type { DeviceDetail } from '../../../shared/fleet/api.ts';
import type { DesiredConfig } from '../../../shared/fleet/messages.ts';
import { can } from './access.ts';
import { call, seg } from './api.ts';
import { h, replace } from './dom.ts';
import { json, relativeTime } from './format.ts';
import { busy, errorBox } from './ui.ts';
import type { ViewContext } from './view.ts';

function comparison(d: DeviceDetail): HTMLElement {
  const { desired, reported } = d;
  const pending = desired !== null && (reported === null || reported.version < desired.version);
  const failedNow = desired !== null && reported !== null && reported.version === desired.version && (reported.status === 'rejected' || reported.status === 'failed');
  const status = failedNow
    ? h('p', { class: 'error', role: 'alert', 'data-config-state': reported.status }, `The box ${reported.status} version ${reported.version}: ${reported.error ?? 'no reason given'}`)
    : pending
      ? h('p', { class: 'notice', 'data-config-state': 'pending' }, h('span', { class: 'badge badge-pending' }, 'pending'), ` version ${desired.version} has not been applied yet${d.online ? '' : ' (the box is offline)'}.`)
      : reported?.status === 'applied'
        ? h('p', { class: 'ok-text', 'data-config-state': 'applied' }, `In sync: version ${reported.version} applied ${relativeTime(reported.at)}.`)
        : h('p', { class: 'muted', 'data-config-state': 'none' }, 'No config pushed to this box yet.');
  const olderFailure =
    reported && !failedNow && (reported.status === 'rejected' || reported.status === 'failed')
      ? h('p', { class: 'warn-text' }, `Last report: version ${reported.version} ${reported.status}: ${reported.error ?? ''}`)
      : null;
  return h(
    'div',
    null,
    status,
    olderFailure,
    h(
      'div',
      { class: 'columns' },
      h(
        'div',
        { class: 'config-side' },
        h('h3', null, desired ? `Desired · v${desired.version}` : 'Desired'),
        desired ? h('p', { class: 'muted small' }, `by ${desired.issuedBy}, ${relativeTime(desired.issuedAt)}`) : null,
        h('pre', { class: 'code', 'data-config': 'desired' }, desired ? json(desired.config) : '—'),
      ),
      h(
        'div',
        { class: 'config-side' },
        h('h3', null, reported ? `Reported · v${reported.version} · ${reported.status}` : 'Reported'),
        reported ? h('p', { class: 'muted small' }, `firmware ${reported.firmware}, ${relativeTime(reported.at)}${reported.steps.length ? `; steps: ${reported.steps.join(', ')}` : ''}`) : null,
        h('pre', { class: 'code', 'data-config': 'reported' }, reported ? json(reported.effective) : '—'),
      ),
    ),
  );
}

/** The section's body; `update` is called on every refresh and leaves the editor alone once touched. */
export function configPanel(ctx: ViewContext, id: string, refresh: () => void): { el: HTMLElement; update(d: DeviceDetail): void } {
  const view = h('div');
  const el = h('div', { class: 'config' }, view);
  if (!can(ctx.me.role, 'config.push')) return { el, update: (d) => replace(view, comparison(d)) };

  const editor = h('textarea', { id: 'config-editor', rows: 12, spellcheck: 'false', class: 'code', 'aria-describedby': 'config-help' });
  const message = h('div', { 'aria-live': 'polite' });
  const push = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Push config');
  const reset = h('button', { type: 'button', class: 'btn' }, 'Reset to desired');
  let touched = false;
  let latest: DeviceDetail | null = null;
  const fill = (): void => {
    editor.value = json(latest?.desired?.config ?? {});
    touched = false;
  };
  editor.addEventListener('input', () => {
    touched = true;
  });
  reset.addEventListener('click', fill);
  const form = h(
    'form',
    { class: 'config-editor', 'aria-label': 'Edit desired config' },
    h('label', { for: 'config-editor' }, 'New desired config (JSON object of remote keys)'),
    h('p', { id: 'config-help', class: 'muted small' }, 'Only the keys given are set; the box validates values and reports back.'),
    editor,
    h('div', { class: 'actions' }, reset, push),
    message,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    let config: unknown;
    try {
      config = JSON.parse(editor.value);
    } catch (err) {
      replace(message, errorBox(new Error(`Not valid JSON: ${err instanceof Error ? err.message : String(err)}`)));
      return;
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      replace(message, errorBox(new Error('The config must be a JSON object, e.g. {"logLevel": "debug"}.')));
      return;
    }
    void busy(push, async () => {
      try {
        const desired = await call<DesiredConfig>('PUT', `/api/devices/${seg(id)}/config`, { config });
        replace(message, h('p', { class: 'ok-text', role: 'status' }, `Pushed version ${desired.version}; waiting for the box to report.`));
        touched = false;
        refresh();
      } catch (err) {
        replace(message, errorBox(err));
      }
    });
  });
  el.append(form);
  return {
    el,
    update(d) {
      latest = d;
      replace(view, comparison(d));
      if (!touched && document.activeElement !== editor) fill();
    },
  };
}
