// What a person may do to instances (local admin API or a fleet command): release or discard what
// the box holds, and send a study again. Each is a state transition with who did it in the history;
// nothing here deletes a file (retention alone does, and only for confirmed instances).
import type { InstanceRecord, InstanceState } from '../../shared/types/store.ts';
import type { Store } from './store.ts';

/**
 * Where a released or re-sent instance goes: the state the preparer consumes (it listens for
 * records moving back into it). When the filter stage lands this becomes 'filtered', so that a
 * released instance is not filtered again.
 */
export const RELEASED_STATE: InstanceState = 'received';

export class OperatorError extends Error {
  readonly statusCode: 404 | 409;
  readonly code: 'not-found' | 'conflict';

  constructor(code: 'not-found' | 'conflict', message: string) {
    super(message);
    this.name = 'OperatorError';
    this.code = code;
    this.statusCode = code === 'not-found' ? 404 : 409;
  }
}

async function heldRecord(store: Store, id: string): Promise<InstanceRecord> {
  const record = await store.get(id);
  if (!record) throw new OperatorError('not-found', `no instance ${id}`);
  if (record.state !== 'held') throw new OperatorError('conflict', `instance ${id} is ${record.state}, not held`);
  return record;
}

/** Another actor moved the record between our read and our write: tell the caller plainly. */
async function move(store: Store, id: string, from: InstanceState, to: InstanceState, event: string, detail: string): Promise<InstanceRecord> {
  try {
    return await store.transition(id, from, to, event, detail);
  } catch (err) {
    const now = await store.get(id);
    throw new OperatorError('conflict', `instance ${id} changed meanwhile (now ${now?.state ?? 'gone'}): ${(err as Error).message}`);
  }
}

/** Held → the pipeline. `by` names the person or channel ("local-api", "fleet command <id>"). */
export async function releaseHeld(store: Store, id: string, by: string, note?: string): Promise<InstanceRecord> {
  const record = await heldRecord(store, id);
  return move(store, id, 'held', RELEASED_STATE, 'released', `by ${by}${note ? `: ${note}` : ''} (was held: ${record.reason ?? 'no reason recorded'})`);
}

/** Held → discarded. The file stays on disk; the record says who decided and why. */
export async function discardHeld(store: Store, id: string, by: string, reason?: string): Promise<InstanceRecord> {
  await heldRecord(store, id);
  return move(store, id, 'held', 'discarded', 'discarded', `by ${by}${reason ? `: ${reason}` : ''}`);
}

export interface RequeueReport {
  studyInstanceUid: string;
  /** Instances moved back into the pipeline; the receiver dedupes what it already has. */
  requeued: string[];
  /** Instances left alone, by why: already pending, held/discarded (a person's decision), purged. */
  skipped: Record<string, number>;
}

const ALREADY_PENDING: ReadonlySet<InstanceState> = new Set(['received', 'filtered', 'registered', 'compressed', 'queued', 'uploaded']);

/** Sends every instance of a study again to every destination. */
export async function requeueStudy(store: Store, studyInstanceUid: string, by: string): Promise<RequeueReport> {
  const study = await store.getStudy(studyInstanceUid);
  if (!study) throw new OperatorError('not-found', `no study ${studyInstanceUid}`);
  const report: RequeueReport = { studyInstanceUid, requeued: [], skipped: {} };
  const skip = (why: string) => (report.skipped[why] = (report.skipped[why] ?? 0) + 1);
  for (const id of await store.studyInstanceIds(studyInstanceUid)) {
    const record = await store.get(id);
    if (!record) continue;
    if (record.purgedAt) skip('purged');
    else if (ALREADY_PENDING.has(record.state)) skip('pending');
    else if (record.state === 'committed' || record.state === 'dead-letter') {
      try {
        await store.transition(id, record.state, RELEASED_STATE, 'resend-requested', `by ${by}`);
        report.requeued.push(id);
      } catch {
        skip('changed-meanwhile');
      }
    } else skip(record.state);
  }
  return report;
}
