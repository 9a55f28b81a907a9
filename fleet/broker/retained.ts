// Retained messages for the embedded broker, indexed by topic.
//
// aedes-persistence's memory store answers a SUBSCRIBE by testing every retained topic against the
// filter: O(retained) per subscription. Every box retains its status and the fleet retains each
// box's desired config and update offer, and every box subscribes to three exact topics when it
// connects — so N boxes (re)connecting cost O(N²) topic matches. Profiled at 3,000 boxes, that scan
// (qlobber + retainedMessagesByPattern) was 30 % of the fleet's CPU during the connect ramp. Here an
// exact filter is one Map lookup; only wildcard filters (tools, tests — never a box) scan.
import { Readable } from 'node:stream';
import type { AedesPublishPacket } from 'aedes';

export class RetainedIndex {
  private readonly byTopic = new Map<string, AedesPublishPacket>();

  get size(): number {
    return this.byTopic.size;
  }

  /** An empty payload clears the topic's retained message (MQTT 3.3.1.3). */
  store(packet: AedesPublishPacket): void {
    if (packet.payload.length === 0) this.byTopic.delete(packet.topic);
    else this.byTopic.set(packet.topic, { ...packet });
  }

  /** Each retained message matching any of the filters, once. */
  *match(filters: readonly string[]): Generator<AedesPublishPacket> {
    const seen = new Set<string>();
    const wildcard: string[][] = [];
    for (const f of filters) {
      if (f.includes('+') || f.includes('#')) {
        wildcard.push(f.split('/'));
        continue;
      }
      const p = this.byTopic.get(f);
      if (p && !seen.has(f)) {
        seen.add(f);
        yield p;
      }
    }
    if (wildcard.length === 0) return;
    for (const [topic, p] of this.byTopic) {
      if (seen.has(topic)) continue;
      const levels = topic.split('/');
      if (wildcard.some((f) => filterMatches(f, levels))) {
        seen.add(topic);
        yield p;
      }
    }
  }
}

/** MQTT 3.1.1 §4.7: `+` one level, `#` the rest (parent included); `$…` topics never match a leading wildcard. */
export function filterMatches(filter: readonly string[], topic: readonly string[]): boolean {
  if ((filter[0] === '+' || filter[0] === '#') && topic[0]?.startsWith('$')) return false;
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i];
    if (f === '#') return true;
    if (i >= topic.length) return false;
    if (f !== '+' && f !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** What aedes calls on its persistence for retained messages (promise style in aedes 1.x). */
export interface RetainedPersistence {
  storeRetained(packet: AedesPublishPacket, cb?: (err: Error | null) => void): unknown;
  createRetainedStream(pattern: string): Readable;
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/** Replaces the persistence's retained-message handling with a RetainedIndex; the rest stays as it was. */
export function withRetainedIndex<P extends RetainedPersistence>(persistence: P, index = new RetainedIndex()): P {
  persistence.storeRetained = (packet, cb) => {
    index.store(packet);
    if (cb) return void process.nextTick(cb, null);
    return Promise.resolve();
  };
  persistence.createRetainedStream = (pattern) => Readable.from(index.match([pattern]));
  persistence.createRetainedStreamCombi = (patterns) => Readable.from(index.match(patterns));
  return persistence;
}
