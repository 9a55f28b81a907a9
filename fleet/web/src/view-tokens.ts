// #/tokens — one-time enrolment tokens: create one (shown once, with its QR code for the box's
// setup screen), list them with their state, revoke unused ones.
import type { EnrolTokenInfo } from '../../../shared/fleet/api.ts';
import { can } from './access.ts';
import { call, get, seg } from './api.ts';
import { h, replace } from './dom.ts';
import { dateTime, relativeTime } from './format.ts';
import { ask, busy, errorBox, section, table } from './ui.ts';
import type { View, ViewContext } from './view.ts';

interface CreatedToken {
  token: string;
  qrSvg: string;
  info: EnrolTokenInfo;
}

const EXPIRIES = [
  ['1h', '1 hour'],
  ['24h', '24 hours'],
  ['72h', '3 days'],
  ['7d', '7 days'],
] as const;

/**
 * The QR code goes in as an image from a data: URL: an SVG in an <img> cannot run script or reach
 * the network, and the page's CSP allows data: images only. The markup is never put in the DOM.
 */
export function qrImage(svg: string, alt: string): HTMLImageElement {
  return h('img', { class: 'qr', src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt, width: 220, height: 220 });
}

async function copy(text: string, field: HTMLInputElement): Promise<string> {
  try {
    await navigator.clipboard.writeText(text);
    return 'Copied to the clipboard.';
  } catch {
    field.select();
    return 'The browser refused clipboard access: the token is selected, copy it with Ctrl+C.';
  }
}

function shown(created: CreatedToken): HTMLElement {
  const field = h('input', { id: 'new-token', class: 'code token-field', readonly: true, value: created.token, 'aria-label': 'Enrolment token' });
  const note = h('span', { class: 'muted', 'aria-live': 'polite' });
  const copyBtn = h('button', { type: 'button', class: 'btn' }, 'Copy');
  copyBtn.addEventListener('click', () => void copy(created.token, field).then((m) => (note.textContent = m)));
  return h(
    'div',
    { class: 'new-token', 'data-token-id': created.info.tokenId },
    h('p', { class: 'notice' }, 'This token is shown only now. It enrols one box, once, until ', h('time', { datetime: created.info.expiresAt }, dateTime(created.info.expiresAt)), '.'),
    h('div', { class: 'token-row' }, field, copyBtn, note),
    qrImage(created.qrSvg, `QR code of enrolment token ${created.info.tokenId}`),
    h('p', { class: 'muted small' }, 'On the box: ', h('code', null, `mbox appliance --fleet-url ${location.origin} --enrol-token <token>`), ', or scan the code in its setup screen.'),
  );
}

function createForm(onCreated: (t: CreatedToken) => void): HTMLElement {
  const group = h('input', { id: 't-group', name: 'group', required: true, value: 'default', pattern: '[A-Za-z0-9._\\-]+', autocomplete: 'off' });
  const expires = h('select', { id: 't-expires', name: 'expires' }, EXPIRIES.map(([v, label]) => h('option', { value: v, selected: v === '24h' }, label)));
  const clinic = h('input', { id: 't-clinic', name: 'clinic', autocomplete: 'off', placeholder: 'e.g. North Clinic' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create token');
  const message = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'inline-form', 'aria-label': 'Create an enrolment token' },
    h('label', { for: 't-group' }, 'Group', group),
    h('label', { for: 't-expires' }, 'Expires in', expires),
    h('label', { for: 't-clinic' }, 'Clinic label', clinic),
    submit,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const labels = clinic.value.trim() ? { clinic: clinic.value.trim() } : undefined;
    void busy(submit, async () => {
      try {
        const created = await call<CreatedToken>('POST', '/api/tokens/enrolment', { group: group.value.trim(), expires: expires.value, ...(labels ? { labels } : {}) });
        replace(message);
        onCreated(created);
      } catch (err) {
        replace(message, errorBox(err));
      }
    });
  });
  return h('div', null, form, message);
}

export function tokensView(ctx: ViewContext): View {
  let disposed = false;
  const result = h('div');
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const mayRevoke = can(ctx.me.role, 'token.revoke');
  const load = async (): Promise<void> => {
    try {
      const tokens = await get<EnrolTokenInfo[]>('/api/tokens/enrolment');
      if (disposed) return;
      const sorted = [...tokens].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      replace(
        list,
        table(
          'Enrolment tokens',
          ['Token id', 'Group', 'Labels', 'Created', 'Expires', 'State', 'Device', ''],
          sorted.map((t) => [
            h('code', null, t.tokenId),
            t.group,
            Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(', '),
            h('span', { title: dateTime(t.createdAt) }, `${relativeTime(t.createdAt)} by ${t.createdBy}`),
            h('time', { datetime: t.expiresAt, title: dateTime(t.expiresAt) }, relativeTime(t.expiresAt)),
            h('span', { class: `badge badge-token-${t.state}`, 'data-state': t.state }, t.state),
            t.deviceId ? h('a', { href: `#/devices/${encodeURIComponent(t.deviceId)}` }, t.deviceId) : '',
            mayRevoke && t.state === 'pending' ? revokeButton(t, load) : '',
          ]),
          'No enrolment tokens yet.',
        ),
      );
    } catch (err) {
      if (!disposed) replace(list, errorBox(err));
    }
  };
  void load();
  const create = can(ctx.me.role, 'token.create')
    ? section(
        'New token',
        createForm((t) => {
          replace(result, shown(t));
          void load();
        }),
        result,
      )
    : null;
  return {
    el: h('div', { class: 'view view-tokens' }, h('h1', null, 'Enrolment tokens'), create, section('Tokens', list)),
    dispose() {
      disposed = true;
    },
  };
}

function revokeButton(t: EnrolTokenInfo, reload: () => Promise<void>): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-revoke': t.tokenId }, 'Revoke');
  b.addEventListener('click', () => {
    void (async () => {
      const ok = await ask({ title: `Revoke token ${t.tokenId}?`, message: 'A box that has not used it yet can no longer enrol with it.', confirm: 'Revoke', danger: true });
      if (ok === null) return;
      await busy(b, async () => {
        try {
          await call('DELETE', `/api/tokens/enrolment/${seg(t.tokenId)}`);
        } catch (err) {
          b.replaceWith(errorBox(err));
        }
        await reload();
      });
    })();
  });
  return b;
}
