// Commands to one box: buttons (asking what a command needs first), the answer of the last one,
// and the history. Commands go with wait: true, so the answer is the box's own reply (or
// timed-out when the box does not answer within the fleet's command timeout).
import type { CommandRecord } from '../../../shared/fleet/api.ts';
import { can } from './access.ts';
import { call, get, seg } from './api.ts';
import { h, replace } from './dom.ts';
import { dateTime, json, relativeTime } from './format.ts';
import { ask, busy, errorBox, table } from './ui.ts';
import type { ViewContext } from './view.ts';

interface CommandSpec {
  name: string;
  label: string;
  /** Asks the user for the args; null = cancelled. */
  args: () => Promise<Record<string, unknown> | null>;
}

const UID_PATTERN = '[0-9]+(\\.[0-9]+)*';

const COMMANDS: readonly CommandSpec[] = [
  { name: 'ping', label: 'Ping', args: async () => ({}) },
  {
    name: 'restart',
    label: 'Restart',
    args: async () => ((await ask({ title: 'Restart the box?', message: 'Receiving stops for a few seconds; nothing queued is lost.', confirm: 'Restart', danger: true })) === null ? null : {}),
  },
  {
    name: 'fetch-logs',
    label: 'Fetch logs',
    args: async () => {
      const lines = await ask({ title: 'Fetch logs', field: { label: 'Lines', value: '200', pattern: '[0-9]{1,5}' }, confirm: 'Fetch' });
      return lines === null ? null : { lines: Number(lines) || 200 };
    },
  },
  {
    name: 'resend-study',
    label: 'Re-send study',
    args: async () => {
      const uid = await ask({ title: 'Re-send a study', field: { label: 'Study Instance UID', placeholder: '1.2.840…', pattern: UID_PATTERN }, confirm: 'Re-send' });
      return uid ? { studyInstanceUid: uid } : null;
    },
  },
  {
    name: 'release-held',
    label: 'Release held',
    args: async () => {
      const held = await ask({ title: 'Release a held instance', message: 'It continues to upload as if the filter had passed it.', field: { label: 'Held instance id (SOP Instance UID)' }, confirm: 'Release' });
      return held ? { id: held } : null;
    },
  },
  {
    name: 'discard-held',
    label: 'Discard held',
    args: async () => {
      const held = await ask({ title: 'Discard a held instance', message: 'It will never be uploaded.', field: { label: 'Held instance id (SOP Instance UID)' }, confirm: 'Discard', danger: true });
      return held ? { id: held } : null;
    },
  },
];

/** Log lines from a fetch-logs answer, whatever shape the box chose (lines[], text, or records). */
function logLines(result: unknown): string[] | null {
  const src = result && typeof result === 'object' && !Array.isArray(result) ? (result as { lines?: unknown }).lines : result;
  if (typeof src === 'string') return src.split('\n');
  if (!Array.isArray(src)) return null;
  return src.map((l) => (typeof l === 'string' ? l : JSON.stringify(l)));
}

export function commandResult(rec: CommandRecord): HTMLElement {
  const lines = rec.name === 'fetch-logs' && rec.status === 'ok' ? logLines(rec.result) : null;
  const took = rec.answeredAt ? `${Date.parse(rec.answeredAt) - Date.parse(rec.issuedAt)} ms` : '';
  return h(
    'div',
    { class: `command-result result-${rec.status}`, 'data-command': rec.name, 'data-status': rec.status },
    h('p', null, h('strong', null, rec.name), ' → ', h('span', { class: `badge badge-${rec.status === 'ok' ? 'ok' : rec.status === 'pending' ? 'pending' : 'critical'}` }, rec.status), took ? ` in ${took}` : ''),
    rec.error ? h('p', { class: 'error' }, rec.error) : null,
    lines ? h('pre', { class: 'code logs', 'aria-label': 'Log lines' }, lines.join('\n')) : rec.result !== undefined ? h('pre', { class: 'code' }, json(rec.result)) : null,
  );
}

/**
 * Follows a command that came back still pending (the wait ended before the answer was stored)
 * until it is final or its expiry has clearly passed.
 */
async function settle(rec: CommandRecord): Promise<CommandRecord> {
  const giveUpAt = Date.parse(rec.expiresAt) + 5000;
  let cur = rec;
  while (cur.status === 'pending' && Date.now() < giveUpAt) {
    await new Promise((r) => setTimeout(r, 500));
    cur = await get<CommandRecord>(`/api/commands/${seg(cur.id)}`);
  }
  return cur;
}

export function commandsPanel(ctx: ViewContext, id: string): { el: HTMLElement; update(): Promise<void> } {
  const output = h('div', { class: 'command-output', 'aria-live': 'polite' });
  const history = h('div');
  const update = async (): Promise<void> => {
    try {
      const recs = await get<CommandRecord[]>(`/api/devices/${seg(id)}/commands`);
      const newest = [...recs].sort((a, b) => b.issuedAt.localeCompare(a.issuedAt)).slice(0, 50);
      replace(
        history,
        table(
          'Command history',
          ['Issued', 'Command', 'Arguments', 'By', 'Status', 'Answered'],
          newest.map((r) => [
            h('time', { datetime: r.issuedAt, title: dateTime(r.issuedAt) }, relativeTime(r.issuedAt)),
            r.name,
            Object.keys(r.args).length ? h('code', null, JSON.stringify(r.args)) : '',
            r.issuedBy,
            h('span', { class: `badge badge-${r.status === 'ok' ? 'ok' : r.status === 'pending' ? 'pending' : 'critical'}` }, r.status),
            r.answeredAt ? dateTime(r.answeredAt) : '—',
          ]),
          'No commands sent to this box yet.',
        ),
      );
    } catch (err) {
      replace(history, errorBox(err));
    }
  };
  const buttons = can(ctx.me.role, 'command')
    ? COMMANDS.map((spec) => {
        const b = h('button', { type: 'button', class: 'btn', 'data-command': spec.name }, spec.label);
        b.addEventListener('click', () => {
          void (async () => {
            const args = await spec.args();
            if (args === null) return;
            await busy(b, async () => {
              replace(output, h('p', { class: 'muted' }, `${spec.label}: waiting for the box…`));
              try {
                let rec = await call<CommandRecord>('POST', `/api/devices/${seg(id)}/commands`, { name: spec.name, args, wait: true });
                replace(output, commandResult(rec));
                rec = await settle(rec);
                replace(output, commandResult(rec));
              } catch (err) {
                replace(output, errorBox(err));
              }
              await update();
            });
          })();
        });
        return b;
      })
    : [];
  const el = h('div', { class: 'commands' }, buttons.length ? h('div', { class: 'actions actions-left', role: 'group', 'aria-label': 'Commands' }, buttons) : null, output, h('h3', null, 'History'), history);
  return { el, update };
}
