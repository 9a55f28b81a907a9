// Per day (the box's local date) and modality: what came in, what went out, how long it took.
// Fed by store events, persisted by the agent on each telemetry tick so a restart keeps today.
import type { DailyFigures } from '../../shared/fleet/messages.ts';
import type { Logger } from '../../shared/log.ts';
import type { InstanceRecord, InstanceState } from '../../shared/types/store.ts';
import type { Store } from '../store/store.ts';

type Figures = Omit<DailyFigures, 'day' | 'modality'>;
interface Bucket extends Figures {
  day: string;
  modality: string;
  /** Studies counted in this bucket, so an instance arriving later does not count its study twice. */
  seen: Set<string>;
}

export interface PersistedDaily {
  buckets: Array<DailyFigures & { studyUids: string[] }>;
}

const MAX_ITEMS = 64; // Telemetry's schema bound

export function localDay(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function previousDay(now: Date, dayOf: (d: Date) => string): string {
  const d = new Date(now);
  d.setDate(d.getDate() - 1);
  return dayOf(d);
}

const modalityOf = (r: InstanceRecord): string => r.header.modality?.trim() || 'unknown';

export class DailyBook {
  private readonly buckets = new Map<string, Bucket>();
  private readonly dayOf: (d: Date) => string;

  constructor(dayOf: (d: Date) => string = localDay) {
    this.dayOf = dayOf;
  }

  private bucket(now: Date, modality: string): Bucket {
    const day = this.dayOf(now);
    const key = `${day}\0${modality}`;
    let b = this.buckets.get(key);
    if (!b) {
      b = { day, modality, studies: 0, instances: 0, bytesReceived: 0, bytesSent: 0, bytesFiltered: 0, uploadLatencyMs: { count: 0, sum: 0, max: 0 }, seen: new Set() };
      this.buckets.set(key, b);
    }
    return b;
  }

  instanceStored(r: InstanceRecord, now = new Date()): void {
    const b = this.bucket(now, modalityOf(r));
    b.instances += 1;
    b.bytesReceived += r.size;
    if (!b.seen.has(r.header.studyInstanceUid)) {
      b.seen.add(r.header.studyInstanceUid);
      b.studies = b.seen.size;
    }
  }

  /** `latencyMs` only for an instance's first commit (a study sent again is not a slow upload). */
  committed(r: InstanceRecord, bytesSent: number, latencyMs: number | undefined, now = new Date()): void {
    const b = this.bucket(now, modalityOf(r));
    b.bytesSent += bytesSent;
    if (latencyMs !== undefined && latencyMs >= 0) {
      b.uploadLatencyMs.count += 1;
      b.uploadLatencyMs.sum += latencyMs;
      b.uploadLatencyMs.max = Math.max(b.uploadLatencyMs.max, latencyMs);
    }
  }

  filtered(r: InstanceRecord, now = new Date()): void {
    this.bucket(now, modalityOf(r)).bytesFiltered += r.size;
  }

  /** Today and yesterday, busiest first if there are more than the message may carry. */
  figures(now = new Date()): DailyFigures[] {
    this.prune(now);
    const out = [...this.buckets.values()].map(({ seen: _seen, ...f }) => ({ ...f, uploadLatencyMs: { ...f.uploadLatencyMs } }));
    out.sort((a, b) => b.day.localeCompare(a.day) || b.instances - a.instances || a.modality.localeCompare(b.modality));
    return out.slice(0, MAX_ITEMS);
  }

  /** Forgets everything older than yesterday. */
  prune(now = new Date()): void {
    const keep = new Set([this.dayOf(now), previousDay(now, this.dayOf)]);
    for (const [key, b] of this.buckets) if (!keep.has(b.day)) this.buckets.delete(key);
  }

  toJSON(): PersistedDaily {
    return { buckets: [...this.buckets.values()].map(({ seen, ...f }) => ({ ...f, studyUids: [...seen] })) };
  }

  /** Restores a saved book; anything malformed is skipped rather than trusted. */
  load(saved: unknown, now = new Date()): void {
    const list = (saved as Partial<PersistedDaily> | undefined)?.buckets;
    if (!Array.isArray(list)) return;
    for (const x of list) {
      if (typeof x?.day !== 'string' || typeof x.modality !== 'string') continue;
      const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
      const seen = new Set(Array.isArray(x.studyUids) ? x.studyUids.filter((u): u is string => typeof u === 'string') : []);
      const lat = x.uploadLatencyMs ?? { count: 0, sum: 0, max: 0 };
      this.buckets.set(`${x.day}\0${x.modality}`, {
        day: x.day,
        modality: x.modality,
        studies: seen.size,
        instances: n(x.instances),
        bytesReceived: n(x.bytesReceived),
        bytesSent: n(x.bytesSent),
        bytesFiltered: n(x.bytesFiltered),
        uploadLatencyMs: { count: n(lat.count), sum: n(lat.sum), max: n(lat.max) },
        seen,
      });
    }
    this.prune(now);
  }
}

/** Feeds the book from the store's events; returns a function that stops it. */
export function attachDaily(store: Store, book: DailyBook, log: Logger): () => void {
  const onStored = (r: InstanceRecord) => book.instanceStored(r);
  const onChanged = (r: InstanceRecord, from: InstanceState) => {
    if (r.state === 'held' && from !== 'held') book.filtered(r);
    if (r.state !== 'committed') return;
    const firstCommit = r.history.filter((h) => h.event === 'committed').length <= 1;
    const latency = firstCommit ? Date.parse(r.updatedAt) - Date.parse(r.receivedAt) : undefined;
    store.deliveries
      .forInstance(r.id)
      .then((ds) => book.committed(r, ds.filter((d) => d.state === 'committed').reduce((n, d) => n + d.size, 0), latency))
      .catch((err: unknown) => log.warn({ err, id: r.id }, 'daily figures: reading deliveries failed'));
  };
  store.on('instance-stored', onStored);
  store.on('state-changed', onChanged);
  return () => {
    store.off('instance-stored', onStored);
    store.off('state-changed', onChanged);
  };
}
