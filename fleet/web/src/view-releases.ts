// #/releases — the releases registry: every uploaded bundle with its hash and signing key, the
// details of one (#/releases?v=<version>), an upload form (admin) and delete (admin). The bundle
// goes up as the raw request body: the fleet streams it to disk and verifies its signature.
import type { ReleaseRecord } from '../../rollouts/schemas.ts';
import { can } from './access.ts';
import { ApiFailure, call, get, seg, storedToken } from './api.ts';
import { h, replace } from './dom.ts';
import { bytes, dateTime, relativeTime } from './format.ts';
import { ask, busy, errorBox, keyValues, section, table } from './ui.ts';
import type { View, ViewContext } from './view.ts';

/** POST /api/releases with the file as the body (not JSON, so not through call()). */
async function uploadFile(file: File): Promise<{ record: ReleaseRecord; created: boolean }> {
  const token = storedToken();
  let res: Response;
  try {
    res = await fetch('/api/releases', {
      method: 'POST',
      headers: { accept: 'application/json', 'content-type': 'application/octet-stream', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: file,
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiFailure(0, 'network', `the upload did not reach the fleet (${err instanceof Error ? err.message : String(err)})`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; message?: string } & Partial<ReleaseRecord>;
  if (!res.ok) throw new ApiFailure(res.status, body.error ?? `http-${res.status}`, body.message ?? `${res.status} ${res.statusText}`);
  return { record: body as ReleaseRecord, created: res.status === 201 };
}

function uploadForm(onDone: () => void): HTMLElement {
  const input = h('input', { id: 'r-file', name: 'bundle', type: 'file', accept: '.mbx,application/octet-stream', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Upload and verify');
  const message = h('div', { 'aria-live': 'polite', id: 'upload-result' });
  const form = h('form', { class: 'inline-form', 'aria-label': 'Upload a release bundle' }, h('label', { for: 'r-file' }, 'Signed bundle (.mbx)', input), submit);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const file = input.files?.[0];
    if (!file) return;
    replace(message, h('p', { class: 'muted' }, `Uploading ${file.name} (${bytes(file.size)})…`));
    void busy(submit, async () => {
      try {
        const { record, created } = await uploadFile(file);
        replace(message, h('p', { class: 'ok-text' }, created ? `Release ${record.version} verified and stored.` : `Release ${record.version} was already stored with these bytes.`));
        form.reset();
        onDone();
      } catch (err) {
        replace(message, errorBox(err));
      }
    });
  });
  return h('div', null, form, h('p', { class: 'muted small' }, 'Build it with ', h('code', null, 'mbox bundle build --key <private key> --out <file>'), '. The fleet refuses a bundle whose signature or files do not verify against its pinned keys.'), message);
}

function details(r: ReleaseRecord): HTMLElement {
  return keyValues([
    ['Version', h('code', null, r.version)],
    ['SHA-256', h('code', { class: 'hash' }, r.sha256)],
    ['Size', `${bytes(r.size)} (${r.size.toLocaleString('en-US')} bytes)`],
    ['Signing key', h('code', null, r.keyId)],
    ['Architecture', r.arch],
    ['Node', r.nodeVersion],
    ['Data schema', String(r.dataSchema)],
    ['Files', String(r.files)],
    ['Built', dateTime(r.createdAt)],
    ['Uploaded', `${dateTime(r.uploadedAt)} by ${r.uploadedBy}`],
  ]);
}

function deleteButton(r: ReleaseRecord, reload: () => Promise<void>): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'data-delete': r.version }, 'Delete');
  b.addEventListener('click', () => {
    void (async () => {
      const ok = await ask({ title: `Delete release ${r.version}?`, message: 'Its bundle is removed from the fleet. Refused while a rollout offers it.', confirm: 'Delete', danger: true });
      if (ok === null) return;
      await busy(b, async () => {
        try {
          await call('DELETE', `/api/releases/${seg(r.version)}`);
        } catch (err) {
          b.replaceWith(errorBox(err));
        }
        await reload();
      });
    })();
  });
  return b;
}

export function releasesView(ctx: ViewContext): View {
  let disposed = false;
  const selected = ctx.query.get('v');
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  const detailBox = h('div');
  const mayDelete = can(ctx.me.role, 'release.delete');
  const load = async (): Promise<void> => {
    try {
      const releases = await get<ReleaseRecord[]>('/api/releases');
      if (disposed) return;
      replace(
        list,
        table(
          'Releases',
          ['Version', 'Arch', 'Size', 'SHA-256', 'Key', 'Built', 'Uploaded', ''],
          releases.map((r) => [
            h('a', { href: `#/releases?v=${encodeURIComponent(r.version)}`, 'data-version': r.version }, r.version),
            r.arch,
            bytes(r.size),
            h('code', { title: r.sha256 }, `${r.sha256.slice(0, 12)}…`),
            h('code', null, r.keyId),
            dateTime(r.createdAt),
            h('span', { title: dateTime(r.uploadedAt) }, `${relativeTime(r.uploadedAt)} by ${r.uploadedBy}`),
            mayDelete ? deleteButton(r, load) : '',
          ]),
          'No releases yet.',
        ),
      );
      const pick = selected ? releases.find((r) => r.version === selected) : undefined;
      replace(detailBox, pick ? section(`Release ${pick.version}`, details(pick), h('p', null, h('a', { href: '#/rollouts' }, 'Roll it out →'))) : null);
    } catch (err) {
      if (!disposed) replace(list, errorBox(err));
    }
  };
  void load();
  return {
    el: h(
      'div',
      { class: 'view view-releases' },
      h('h1', null, 'Releases'),
      can(ctx.me.role, 'release.upload') ? section('Upload a release', uploadForm(() => void load())) : null,
      detailBox,
      section('Releases', list),
    ),
    dispose() {
      disposed = true;
    },
  };
}
