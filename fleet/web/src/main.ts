// Entry point: login, the top navigation and hash routing (#/ · #/devices/:id · #/stats ·
// #/releases · #/rollouts[/:id] · #/tokens · #/audit). Each view owns its element and timers; leaving a view disposes it.
import { ROLE_ORDER, can } from './access.ts';
import { ApiFailure, call, onUnauthorized, storeToken, storedToken, type Me } from './api.ts';
import { auditView } from './view-audit.ts';
import { deviceView } from './view-device.ts';
import { overviewView } from './view-overview.ts';
import { releasesView } from './view-releases.ts';
import { rolloutView } from './view-rollout.ts';
import { rolloutsView } from './view-rollouts.ts';
import { statsView } from './view-stats.ts';
import { tokensView } from './view-tokens.ts';
import { h, replace } from './dom.ts';
import { errorText } from './ui.ts';
import type { View, ViewContext } from './view.ts';

const main = document.getElementById('main') as HTMLElement;
const top = document.getElementById('top') as HTMLElement;
let me: Me | null = null;
let current: View | null = null;

interface Route {
  pattern: RegExp;
  title: string;
  nav?: string;
  make: (ctx: ViewContext) => View;
  allowed?: (m: Me) => boolean;
}

const ROUTES: readonly Route[] = [
  { pattern: /^\/$/, title: 'Fleet overview', nav: '#/', make: overviewView },
  { pattern: /^\/devices\/([^/]+)$/, title: 'Device', make: deviceView },
  { pattern: /^\/stats$/, title: 'Operations statistics', nav: '#/stats', make: statsView },
  { pattern: /^\/releases$/, title: 'Releases', nav: '#/releases', make: releasesView },
  { pattern: /^\/rollouts$/, title: 'Rollouts', nav: '#/rollouts', make: rolloutsView },
  { pattern: /^\/rollouts\/([^/]+)$/, title: 'Rollout', make: rolloutView },
  { pattern: /^\/tokens$/, title: 'Enrolment tokens', nav: '#/tokens', make: tokensView, allowed: (m) => can(m.role, 'token.read') },
  { pattern: /^\/audit$/, title: 'Audit log', nav: '#/audit', make: auditView, allowed: (m) => can(m.role, 'audit.read') },
];

const isRole = (r: unknown): r is Me['role'] => typeof r === 'string' && (ROLE_ORDER as readonly string[]).includes(r);

async function whoami(token?: string): Promise<Me> {
  const body = await call<{ name?: unknown; role?: unknown }>('GET', '/api/whoami', undefined, token);
  if (typeof body?.name !== 'string' || !isRole(body.role)) throw new Error('the fleet answered /api/whoami with an unexpected body');
  return { name: body.name, role: body.role };
}

function disposeCurrent(): void {
  current?.dispose?.();
  current = null;
}

function showLogin(message?: string): void {
  disposeCurrent();
  me = null;
  top.hidden = true;
  top.replaceChildren();
  document.title = 'Sign in · m-box fleet';
  const input = h('input', { id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'login-help' });
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error', hidden: !message }, message ?? '');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'm-box fleet'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h('p', { id: 'login-help', class: 'muted' }, 'Kept for this browser tab only.'),
    error,
    submit,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    submit.disabled = true;
    whoami(token)
      .then((who) => {
        storeToken(token);
        me = who;
        route();
      })
      .catch((err: unknown) => {
        error.hidden = false;
        error.textContent = err instanceof ApiFailure && err.status === 401 ? `Token not accepted: ${err.message}` : errorText(err);
        input.select();
      })
      .finally(() => {
        submit.disabled = false;
      });
  });
  replace(main, form);
  input.focus();
}

function renderTop(active: string | undefined): void {
  if (!me) return;
  const who = me;
  const links = ROUTES.filter((r) => r.nav && (!r.allowed || r.allowed(who))).map((r) =>
    h('a', { href: r.nav ?? '#/', 'aria-current': r.nav === active ? 'page' : null }, r.title.replace('Fleet overview', 'Overview')),
  );
  const logout = h('button', { type: 'button', class: 'btn btn-small' }, 'Sign out');
  logout.addEventListener('click', () => {
    storeToken(null);
    showLogin('Signed out.');
  });
  top.hidden = false;
  replace(
    top,
    h('a', { class: 'brand', href: '#/' }, 'm-box fleet'),
    h('nav', { 'aria-label': 'Main' }, links),
    h('span', { class: 'who', 'data-role': who.role }, `${who.name} · ${who.role}`),
    logout,
  );
}

function route(): void {
  if (!me) return showLogin();
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path = '/', search = ''] = hash.split('?', 2);
  disposeCurrent();
  const found = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  renderTop(found?.r.nav);
  if (!found || !found.m || (found.r.allowed && !found.r.allowed(me))) {
    document.title = 'Not found · m-box fleet';
    replace(main, h('section', { class: 'card' }, h('h1', null, 'Not found'), h('p', null, 'No such page here. '), h('a', { href: '#/' }, 'Back to the overview')));
    return;
  }
  const params = found.m.slice(1).map((p) => decodeURIComponent(p ?? ''));
  current = found.r.make({ me, params, query: new URLSearchParams(search) });
  document.title = `${found.r.title}${params[0] ? ` ${params[0]}` : ''} · m-box fleet`;
  replace(main, current.el);
}

onUnauthorized((message) => {
  storeToken(null);
  showLogin(`Signed out: ${message}`);
});
window.addEventListener('hashchange', route);

async function start(): Promise<void> {
  const token = storedToken();
  if (!token) return showLogin();
  try {
    me = await whoami(token);
    route();
  } catch (err) {
    storeToken(null);
    showLogin(errorText(err));
  }
}
void start();
