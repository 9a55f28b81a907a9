import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { attachDaily, DailyBook, localDay } from '../../../../appliance/agent/daily.ts';
import type { Store } from '../../../../appliance/store/store.ts';
import { createLogger } from '../../../../shared/log.ts';
import type { DeliveryRecord } from '../../../../shared/types/pipeline.ts';
import type { InstanceRecord } from '../../../../shared/types/store.ts';

// Local dates on purpose: the book counts by the box's own calendar.
const today = new Date(2026, 10, 22, 14, 0, 0);
const yesterday = new Date(2026, 10, 21, 23, 59, 0);
const twoDaysAgo = new Date(2026, 10, 20, 12, 0, 0);

function rec(id: string, study: string, modality: string | undefined, size: number, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id,
    header: { transferSyntaxUid: '1.2.840.10008.1.2.1', sopClassUid: '1.2', sopInstanceUid: id, studyInstanceUid: study, seriesInstanceUid: `${study}.1`, ...(modality ? { modality } : {}) },
    contentHash: 'ab',
    size,
    path: 'objects/ab/ab.dcm',
    state: 'received',
    receivedAt: today.toISOString(),
    updatedAt: today.toISOString(),
    history: [],
    ...over,
  };
}

describe('DailyBook', () => {
  it('counts instances, bytes and distinct studies per day and modality', () => {
    const book = new DailyBook();
    book.instanceStored(rec('1', 'S1', 'MR', 100), today);
    book.instanceStored(rec('2', 'S1', 'MR', 50), today);
    book.instanceStored(rec('3', 'S2', 'MR', 10), today);
    book.instanceStored(rec('4', 'S2', 'SR', 5), today);
    book.instanceStored(rec('5', 'S3', undefined, 1), today);
    const f = book.figures(today);
    const mr = f.find((x) => x.modality === 'MR');
    expect(mr).toMatchObject({ day: localDay(today), studies: 2, instances: 3, bytesReceived: 160, bytesSent: 0, bytesFiltered: 0 });
    expect(f.find((x) => x.modality === 'SR')).toMatchObject({ studies: 1, instances: 1 });
    expect(f.find((x) => x.modality === 'unknown')).toMatchObject({ studies: 1, instances: 1 });
  });

  it('records bytes sent and upload latency on commit; a second commit adds bytes but no latency', () => {
    const book = new DailyBook();
    book.committed(rec('1', 'S1', 'CT', 100), 40, 1500, today);
    book.committed(rec('2', 'S1', 'CT', 100), 60, 500, today);
    book.committed(rec('1', 'S1', 'CT', 100), 40, undefined, today);
    expect(book.figures(today)[0]).toMatchObject({ modality: 'CT', bytesSent: 140, uploadLatencyMs: { count: 2, sum: 2000, max: 1500 } });
  });

  it('counts held bytes as filtered', () => {
    const book = new DailyBook();
    book.filtered(rec('1', 'S1', 'CT', 77), today);
    expect(book.figures(today)[0]).toMatchObject({ bytesFiltered: 77 });
  });

  it('sends today and yesterday, and forgets older days', () => {
    const book = new DailyBook();
    book.instanceStored(rec('1', 'S1', 'MR', 1), twoDaysAgo);
    book.instanceStored(rec('2', 'S2', 'MR', 1), yesterday);
    book.instanceStored(rec('3', 'S3', 'MR', 1), today);
    expect(book.figures(today).map((f) => f.day)).toEqual([localDay(today), localDay(yesterday)]);
    expect(book.toJSON().buckets).toHaveLength(2);
  });

  it('survives a restart: today is not zeroed and a study is not counted twice', () => {
    const book = new DailyBook();
    book.instanceStored(rec('1', 'S1', 'MR', 10), today);
    const saved = JSON.parse(JSON.stringify(book.toJSON())) as unknown;
    const again = new DailyBook();
    again.load(saved, today);
    again.instanceStored(rec('2', 'S1', 'MR', 5), today);
    expect(again.figures(today)[0]).toMatchObject({ studies: 1, instances: 2, bytesReceived: 15 });
  });

  it('ignores malformed saved figures instead of trusting them', () => {
    const book = new DailyBook();
    book.load({ buckets: [{ day: localDay(today), modality: 'MR', instances: -4, bytesReceived: 'x', studyUids: [1, 'S1'] }, { nope: true }] }, today);
    book.load('garbage', today);
    expect(book.figures(today)).toEqual([
      { day: localDay(today), modality: 'MR', studies: 1, instances: 0, bytesReceived: 0, bytesSent: 0, bytesFiltered: 0, uploadLatencyMs: { count: 0, sum: 0, max: 0 } },
    ]);
  });

  it('caps the list at what one telemetry message may carry', () => {
    const book = new DailyBook();
    for (let i = 0; i < 80; i++) book.instanceStored(rec(`${i}`, `S${i}`, `M${i}`, 1), today);
    expect(book.figures(today)).toHaveLength(64);
  });
});

describe('attachDaily', () => {
  it('follows the store: stored instances, holds and commits with the bytes each destination took', async () => {
    const deliveries: DeliveryRecord[] = [
      { destination: 'a', state: 'committed', size: 30 } as DeliveryRecord,
      { destination: 'b', state: 'committed', size: 20 } as DeliveryRecord,
    ];
    const fake = Object.assign(new EventEmitter(), { deliveries: { forInstance: async () => deliveries } });
    const store = fake as unknown as Store;
    const book = new DailyBook();
    const detach = attachDaily(store, book, createLogger('silent'));
    const now = new Date();
    const received = rec('1', 'S1', 'MR', 100, { receivedAt: new Date(now.getTime() - 2000).toISOString() });
    fake.emit('instance-stored', received);
    fake.emit('state-changed', { ...received, state: 'held' }, 'received');
    fake.emit('state-changed', { ...received, state: 'committed', updatedAt: now.toISOString(), history: [{ at: now.toISOString(), state: 'committed', event: 'committed' }] }, 'queued');
    await new Promise((r) => setImmediate(r));
    const f = book.figures(now)[0]!;
    expect(f).toMatchObject({ instances: 1, bytesReceived: 100, bytesFiltered: 100, bytesSent: 50, uploadLatencyMs: { count: 1, sum: 2000, max: 2000 } });
    detach();
    fake.emit('instance-stored', rec('2', 'S2', 'MR', 1));
    expect(book.figures(now)[0]!.instances).toBe(1);
  });
});
