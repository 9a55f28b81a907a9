// Record operations that run inside an index transaction: shared by the store and the delivery
// book so that a state change, its work-list key, its study and the counters always move together.
import type { InstanceRecord, InstanceState } from '../../shared/types/store.ts';
import type { Counters, Tx } from './db.ts';
import { moveStudyState } from './study.ts';

export const HISTORY_LIMIT = 100;

export function stateKey(state: InstanceState, record: InstanceRecord): string {
  return `${state}\0${record.receivedAt}\0${record.id}`;
}

export async function countState(tx: Tx, record: InstanceRecord, from: InstanceState | undefined, to: InstanceState): Promise<void> {
  const c: Counters = (await tx.get('meta', 'counters')) ?? { byState: {}, bytesByState: {} };
  const next: Counters = { byState: { ...c.byState }, bytesByState: { ...c.bytesByState } };
  if (from) {
    next.byState[from] = Math.max(0, (next.byState[from] ?? 0) - 1);
    next.bytesByState[from] = Math.max(0, (next.bytesByState[from] ?? 0) - record.size);
    // An emptied state disappears from the counts rather than lingering as 0.
    if (next.byState[from] === 0) {
      delete next.byState[from];
      delete next.bytesByState[from];
    }
  }
  next.byState[to] = (next.byState[to] ?? 0) + 1;
  next.bytesByState[to] = (next.bytesByState[to] ?? 0) + record.size;
  tx.put('meta', 'counters', next);
}

/**
 * Moves a record to a new state with a history entry. Throws if the record is not in `from`
 * (another actor moved it first), so stages never overwrite each other's decisions.
 */
export async function moveState(
  tx: Tx,
  id: string,
  from: InstanceState,
  to: InstanceState,
  event: string,
  detail?: string,
): Promise<InstanceRecord> {
  const current = await tx.get('instances', id);
  if (!current) throw new Error(`instance ${id} not found`);
  if (current.state !== from) throw new Error(`instance ${id} is ${current.state}, not ${from}`);
  const now = new Date().toISOString();
  const next: InstanceRecord = {
    ...current,
    state: to,
    updatedAt: now,
    history: [...current.history, { at: now, state: to, event, ...(detail ? { detail } : {}) }].slice(-HISTORY_LIMIT),
  };
  if (to === 'held' || to === 'dead-letter') next.reason = detail;
  else delete next.reason;
  tx.del('byState', stateKey(from, current));
  tx.put('byState', stateKey(to, current), id);
  tx.put('instances', id, next);
  const study = await tx.get('studies', current.header.studyInstanceUid);
  if (study) tx.put('studies', study.studyInstanceUid, moveStudyState(study, from, to));
  await countState(tx, current, from, to);
  return next;
}
