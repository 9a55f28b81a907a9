// Fleet commands: validate, refuse what expired while the box was away, run, answer. Every answer
// carries the request's id; a bad argument gets a message naming it rather than a silent drop.
import { Ajv, type ErrorObject } from 'ajv';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { CommandRequest, type CommandName, type CommandResponse } from '../../shared/fleet/messages.ts';
import type { InstanceRecord } from '../../shared/types/store.ts';
import type { RequeueReport } from '../store/operator.ts';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type Level = (typeof LEVELS)[number];
const Uid = Type.String({ pattern: '^[0-9.]{1,64}$' });
// Held versions of a conflicting UID carry "#<hash prefix>".
const InstanceId = Type.String({ pattern: '^[0-9.]{1,64}(#[0-9a-f]{12})?$' });
const Empty = Type.Object({}, { additionalProperties: false });
const HeldArgs = Type.Object(
  { id: Type.Optional(InstanceId), ids: Type.Optional(Type.Array(InstanceId, { minItems: 1, maxItems: 1000 })), reason: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);

const ARGS = {
  ping: Empty,
  restart: Empty,
  'resend-study': Type.Object({ studyInstanceUid: Uid }, { additionalProperties: false }),
  'release-held': HeldArgs,
  'discard-held': HeldArgs,
  'fetch-logs': Type.Object(
    {
      lines: Type.Integer({ minimum: 1, maximum: 2000, default: 200 }),
      level: Type.Optional(Type.Union(LEVELS.map((l) => Type.Literal(l)))),
    },
    { additionalProperties: false },
  ),
} satisfies Record<CommandName, TSchema>;

const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
const checkRequest = ajv.compile(CommandRequest);
const checkArgs = Object.fromEntries(Object.entries(ARGS).map(([name, schema]) => [name, ajv.compile(schema)])) as Record<CommandName, ReturnType<typeof ajv.compile>>;

/** A log answer stays well under what a broker passes in one message. */
const MAX_LOG_BYTES = 256 * 1024;

/** What commands act on; the agent wires it to the runtime, the store and the log ring. */
export interface CommandTarget {
  restart(): Promise<{ dicomPort: number }>;
  resendStudy(studyInstanceUid: string, by: string): Promise<RequeueReport>;
  releaseHeld(id: string, by: string, note?: string): Promise<InstanceRecord>;
  discardHeld(id: string, by: string, reason?: string): Promise<InstanceRecord>;
  /** Recent log lines (JSON), oldest first; undefined when the logger keeps none. */
  logs(lines: number, level: Level): string[] | undefined;
  uptimeS(): number;
}

const describe = (errors: ErrorObject[], root: string): string =>
  errors
    .map((e) => {
      const path = `${root}${e.instancePath.replace(/\//g, '.')}`;
      if (e.keyword === 'additionalProperties') return `${path}: unknown argument '${String(e.params.additionalProperty)}'`;
      return `${path}: ${e.message ?? 'is invalid'}`;
    })
    .join('; ');

/** Answers one request; undefined when it has no usable id (nothing to answer to). */
export async function handleCommand(payload: unknown, target: CommandTarget, now: () => Date = () => new Date()): Promise<CommandResponse | undefined> {
  const id = (payload as { id?: unknown } | null)?.id;
  const answer = (status: CommandResponse['status'], extra: { result?: unknown; error?: string } = {}): CommandResponse => ({
    id: String(id),
    status,
    ...extra,
    at: now().toISOString(),
  });
  if (typeof id !== 'string' || id.length === 0 || id.length > 64) return undefined;
  if (!checkRequest(payload)) return answer('error', { error: `invalid command request: ${describe(checkRequest.errors ?? [], 'request')}` });
  const req = payload as CommandRequest;
  const expires = Date.parse(req.expiresAt);
  if (!Number.isFinite(expires)) return answer('error', { error: `invalid command request: expiresAt '${req.expiresAt}' is not a date` });
  if (expires <= now().getTime()) return answer('expired', { error: `expired at ${req.expiresAt}; not run` });
  if (!Object.hasOwn(ARGS, req.name)) return answer('unknown-command', { error: `unknown command '${req.name}' (known: ${Object.keys(ARGS).join(', ')})` });
  const name = req.name as CommandName;
  const args = structuredClone(req.args);
  if (!checkArgs[name](args)) return answer('error', { error: describe(checkArgs[name].errors ?? [], 'args') });
  try {
    return await run(name, args, target, `fleet command ${req.id}`, answer, now);
  } catch (err) {
    return answer('error', { error: (err as Error).message });
  }
}

type Answer = (status: CommandResponse['status'], extra?: { result?: unknown; error?: string }) => CommandResponse;

async function run(name: CommandName, args: Record<string, unknown>, target: CommandTarget, by: string, answer: Answer, now: () => Date): Promise<CommandResponse> {
  switch (name) {
    case 'ping':
      return answer('ok', { result: { pong: true, at: now().toISOString(), uptimeS: target.uptimeS() } });
    case 'restart':
      return answer('ok', { result: { restarted: true, ...(await target.restart()) } });
    case 'resend-study': {
      const a = args as Static<(typeof ARGS)['resend-study']>;
      return answer('ok', { result: await target.resendStudy(a.studyInstanceUid, by) });
    }
    case 'release-held':
    case 'discard-held': {
      const a = args as Static<typeof HeldArgs>;
      if ((a.id === undefined) === (a.ids === undefined)) return answer('error', { error: 'args: give exactly one of id or ids' });
      const ids = a.ids ?? [a.id!];
      const done: string[] = [];
      const failed: Array<{ id: string; error: string }> = [];
      for (const id of ids) {
        try {
          await (name === 'release-held' ? target.releaseHeld(id, by, a.reason) : target.discardHeld(id, by, a.reason));
          done.push(id);
        } catch (err) {
          failed.push({ id, error: (err as Error).message });
        }
      }
      const verb = name === 'release-held' ? 'released' : 'discarded';
      const result = { [verb]: done, failed };
      if (failed.length === 0) return answer('ok', { result });
      return answer('error', { result, error: `${failed.length} of ${ids.length} not ${verb}: ${failed.map((f) => f.error).join('; ')}` });
    }
    case 'fetch-logs': {
      const a = args as Static<(typeof ARGS)['fetch-logs']>;
      const lines = target.logs(a.lines, a.level ?? 'trace');
      if (!lines) return answer('error', { error: 'this box keeps no log lines in memory' });
      // Newest lines matter most: drop from the old end to stay within the size bound.
      let bytes = 0;
      let from = lines.length;
      while (from > 0 && bytes + lines[from - 1]!.length + 1 <= MAX_LOG_BYTES) bytes += lines[--from]!.length + 1;
      const kept = lines.slice(from).map((l) => {
        try {
          return JSON.parse(l) as unknown;
        } catch {
          return l;
        }
      });
      return answer('ok', { result: { lines: kept, count: kept.length, truncated: from > 0 } });
    }
  }
}
