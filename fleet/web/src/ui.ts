// Small shared widgets: badges, tables, error boxes and modal questions (a native <dialog>, so
// focus handling and Escape come from the browser).
import type { Health } from '../../../shared/fleet/api.ts';
import { ApiFailure } from './api.ts';
import { h, type Child } from './dom.ts';

export function healthBadge(health: Health | string): HTMLElement {
  return h('span', { class: `badge badge-${health}` }, health);
}

export function onlineDot(online: boolean): HTMLElement {
  const label = online ? 'online' : 'offline';
  return h('span', { class: `dot ${online ? 'dot-on' : 'dot-off'}`, role: 'img', 'aria-label': label, title: label });
}

export function severityBadge(severity: string): HTMLElement {
  return h('span', { class: `badge badge-${severity === 'critical' ? 'critical' : 'warning'}` }, severity);
}

export function errorText(err: unknown): string {
  if (err instanceof ApiFailure) return err.status === 403 ? `Not allowed: ${err.message}` : err.message;
  return err instanceof Error ? err.message : String(err);
}

export function errorBox(err: unknown): HTMLElement {
  return h('p', { class: 'error', role: 'alert' }, errorText(err));
}

let sectionSeq = 0;
export function section(title: string, ...children: Child[]): HTMLElement {
  const id = `sec-${++sectionSeq}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/** A table; `caption` is for screen readers and names it for tests. */
export function table(caption: string, headers: readonly string[], rows: readonly (readonly Child[])[], empty = 'Nothing yet.'): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      null,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows.map((r) => h('tr', null, r.map((c) => h('td', null, c))))),
    ),
  );
}

export function keyValues(pairs: readonly (readonly [string, Child])[]): HTMLElement {
  return h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** Disables the button while `work` runs, so one click is one request. */
export async function busy<T>(button: HTMLButtonElement, work: () => Promise<T>): Promise<T> {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

interface DialogSpec {
  title: string;
  message?: string;
  /** With a field, the dialog asks for text; without, it only confirms. */
  field?: { label: string; value?: string; placeholder?: string; pattern?: string };
  confirm: string;
  danger?: boolean;
}

/** A modal question. Resolves to the entered text (or '' when confirming), or null when cancelled. */
export function ask(spec: DialogSpec): Promise<string | null> {
  return new Promise((resolve) => {
    const input = spec.field
      ? h('input', { type: 'text', name: 'answer', required: true, value: spec.field.value ?? '', placeholder: spec.field.placeholder ?? '', pattern: spec.field.pattern, autocomplete: 'off' })
      : null;
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const ok = h('button', { type: 'submit', class: spec.danger ? 'btn btn-danger' : 'btn btn-primary' }, spec.confirm);
    const form = h(
      'form',
      { method: 'dialog' },
      h('h2', null, spec.title),
      spec.message ? h('p', null, spec.message) : null,
      input && spec.field ? h('label', null, spec.field.label, input) : null,
      h('div', { class: 'actions' }, cancel, ok),
    );
    const dialog = h('dialog', { class: 'modal', 'aria-label': spec.title }, form);
    let answer: string | null = null;
    form.addEventListener('submit', () => {
      answer = input ? input.value.trim() : '';
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    (input ?? ok).focus();
  });
}
