// Prepares the instances of each completed study for their destinations: transcodes each into the
// syntax each destination wants (off the receive path, in the transcoder's worker threads),
// decides its priority, and queues one delivery per destination. Work starts when a study is
// complete (its quiet time passed) so that later stages (filter, registration) see whole series.
// Instances wait in 'received' while there is no destination; a restart picks up whatever was
// left in 'received' in completed studies (open studies complete again on their own clock).
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DestinationConfig } from '../../shared/config/appliance.ts';
import type { Logger } from '../../shared/log.ts';
import { DirSync } from '../../shared/storage/fsync.ts';
import type { Priority, Transcoder } from '../../shared/types/pipeline.ts';
import type { InstanceRecord, StudyRecord } from '../../shared/types/store.ts';
import type { DeliveryPlan } from '../store/deliveries.ts';
import type { Store } from '../store/store.ts';

export interface PrepareOptions {
  store: Store;
  transcoder: Transcoder;
  destinations: DestinationConfig[];
  log: Logger;
  /** How many instances are transcoded at once (match the transcoder's workers). */
  parallel: number;
  /** Called after an instance was queued, to wake the uploaders. */
  onQueued?: () => void;
}

export class Preparer {
  private readonly opts: PrepareOptions;
  private readonly waiting = new Set<string>();
  private readonly dirSync = new DirSync();
  private active = 0;
  private stopped = false;
  private idle: Array<() => void> = [];
  private readonly onComplete = (study: StudyRecord) => void this.addStudy(study.studyInstanceUid);
  // New instances come through 'study-complete'; a record moved back into 'received' (released
  // from held, or a study sent again) is a whole-study decision already, so it goes at once.
  private readonly onChanged = (record: InstanceRecord) => {
    if (record.state === 'received') this.add(record.id);
  };

  constructor(opts: PrepareOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    if (this.opts.destinations.length === 0) return;
    this.opts.store.on('study-complete', this.onComplete);
    this.opts.store.on('state-changed', this.onChanged);
    const studies = new Set<string>();
    for (const id of await this.opts.store.idsInState('received', 100_000)) {
      const record = await this.opts.store.get(id);
      if (record) studies.add(record.header.studyInstanceUid);
    }
    for (const uid of studies) {
      if ((await this.opts.store.getStudy(uid))?.completedAt) await this.addStudy(uid);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.opts.store.off('study-complete', this.onComplete);
    this.opts.store.off('state-changed', this.onChanged);
    await this.drained();
  }

  /** Resolves when nothing is waiting or being prepared (tests, orderly stop). */
  drained(): Promise<void> {
    if (this.active === 0 && (this.waiting.size === 0 || this.stopped)) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async addStudy(studyUid: string): Promise<void> {
    for (const id of await this.opts.store.studyInstanceIds(studyUid)) this.add(id);
  }

  private add(id: string): void {
    if (this.stopped) return;
    this.waiting.add(id);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.active < this.opts.parallel && this.waiting.size > 0) {
      const id = this.waiting.values().next().value as string;
      this.waiting.delete(id);
      this.active++;
      void this.prepare(id)
        .catch((err: unknown) => this.opts.log.error({ err, id }, 'preparing instance failed; it stays received until restart'))
        .finally(() => {
          this.active--;
          this.pump();
          if (this.active === 0 && (this.waiting.size === 0 || this.stopped)) for (const resolve of this.idle.splice(0)) resolve();
        });
    }
  }

  private async prepare(id: string): Promise<void> {
    const { store, transcoder, destinations } = this.opts;
    const record = await store.get(id);
    if (!record || record.state !== 'received') return;
    const bySyntax = new Map<string, Omit<DeliveryPlan, 'destination' | 'priority'>>();
    const plans: DeliveryPlan[] = [];
    const notes: string[] = [];
    for (const dest of destinations) {
      let sent = bySyntax.get(dest.syntax);
      if (!sent) {
        const derived = join('derived', dest.syntax, record.contentHash.slice(0, 2), `${record.contentHash}.dcm`);
        const dir = dirname(join(store.dataDir, derived));
        await mkdir(dir, { recursive: true });
        const result = await transcoder.transcode({ inputPath: join(store.dataDir, record.path), outputPath: join(store.dataDir, derived), target: dest.syntax });
        // The transcoder synced the file; its name must be durable too before a delivery points at it.
        if (result.outcome === 'transcoded') await this.dirSync.sync(dir);
        sent = {
          path: result.outcome === 'transcoded' ? derived : record.path,
          size: result.size,
          transferSyntaxUid: result.transferSyntaxUid,
        };
        bySyntax.set(dest.syntax, sent);
        notes.push(
          result.outcome === 'transcoded'
            ? `${dest.syntax}: ${result.inputSize} → ${result.size} bytes, verified lossless`
            : `${dest.syntax}: as received (${result.reason ?? 'unchanged'})`,
        );
      }
      plans.push({ destination: dest.name, priority: priorityOf(record, dest), ...sent });
    }
    await store.deliveries.enqueue(record, 'received', plans, notes.join('; '));
    this.opts.onQueued?.();
  }
}

/** STAT when the destination names the instance's modality or sending AE. */
export function priorityOf(record: InstanceRecord, dest: DestinationConfig): Priority {
  const modality = record.header.modality;
  if (modality && dest.statModalities.includes(modality)) return 'stat';
  const first = record.history[0]?.source;
  if (first?.kind === 'dimse' && dest.statCallingAe.includes(first.callingAe)) return 'stat';
  return 'routine';
}
