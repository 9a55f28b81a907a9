// Study bookkeeping: pure updates of a StudyRecord, and the quiet-time clock that decides when a
// study is complete.
import type { InstanceRecord, InstanceState, StudyRecord } from '../../shared/types/store.ts';

export function addInstanceToStudy(study: StudyRecord | undefined, record: InstanceRecord): StudyRecord {
  const h = record.header;
  const s: StudyRecord = study
    ? { ...study, series: study.series.map((x) => ({ ...x })), modalities: [...study.modalities], states: { ...study.states } }
    : {
        studyInstanceUid: h.studyInstanceUid,
        patientId: h.patientId,
        patientName: h.patientName,
        studyDate: h.studyDate,
        studyDescription: h.studyDescription,
        accessionNumber: h.accessionNumber,
        modalities: [],
        series: [],
        instances: 0,
        bytes: 0,
        conflicts: 0,
        firstReceivedAt: record.receivedAt,
        lastReceivedAt: record.receivedAt,
        states: {},
      };
  let series = s.series.find((x) => x.seriesInstanceUid === h.seriesInstanceUid);
  if (!series) {
    series = {
      seriesInstanceUid: h.seriesInstanceUid,
      modality: h.modality,
      seriesNumber: h.seriesNumber,
      seriesDescription: h.seriesDescription,
      instances: 0,
    };
    s.series.push(series);
  }
  series.instances += 1;
  if (h.modality && !s.modalities.includes(h.modality)) s.modalities.push(h.modality);
  s.instances += 1;
  s.bytes += record.size;
  if (record.conflictOf) s.conflicts += 1;
  s.lastReceivedAt = record.receivedAt;
  delete s.completedAt;
  s.states[record.state] = (s.states[record.state] ?? 0) + 1;
  return s;
}

export function moveStudyState(study: StudyRecord, from: InstanceState, to: InstanceState): StudyRecord {
  const states = { ...study.states };
  states[from] = Math.max(0, (states[from] ?? 1) - 1);
  if (states[from] === 0) delete states[from];
  states[to] = (states[to] ?? 0) + 1;
  return { ...study, states };
}

/** One timer per open study; re-armed by every instance that arrives for it. */
export class QuietClock {
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; lastActivity: number }>();
  private quietMs: number;
  private readonly onQuiet: (studyUid: string) => void;

  constructor(quietMs: number, onQuiet: (studyUid: string) => void) {
    this.quietMs = quietMs;
    this.onQuiet = onQuiet;
  }

  /** (Re)starts the clock; `lastActivity` lets a restart resume the remaining wait. */
  arm(studyUid: string, lastActivity = Date.now()): void {
    clearTimeout(this.timers.get(studyUid)?.timer);
    const wait = Math.max(0, lastActivity + this.quietMs - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(studyUid);
      this.onQuiet(studyUid);
    }, wait);
    timer.unref();
    this.timers.set(studyUid, { timer, lastActivity });
  }

  /** A new quiet time (remote config): open studies keep their last activity and wait the new time from it. */
  setQuietMs(quietMs: number): void {
    this.quietMs = quietMs;
    for (const [uid, { lastActivity }] of [...this.timers]) this.arm(uid, lastActivity);
  }

  get pending(): number {
    return this.timers.size;
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
  }
}
