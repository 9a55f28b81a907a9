import { describe, expect, it } from 'vitest';
import type { AedesPublishPacket } from 'aedes';
import { filterMatches, RetainedIndex } from '../../../../fleet/broker/retained.ts';

const pkt = (topic: string, payload = 'x'): AedesPublishPacket =>
  ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, dup: false, brokerId: 'b', brokerCounter: 1 }) as AedesPublishPacket;
const topics = (index: RetainedIndex, filters: string[]) => [...index.match(filters)].map((p) => p.topic).sort();

describe('RetainedIndex', () => {
  it('answers exact filters by lookup, keeps the newest message per topic, and clears on an empty payload', () => {
    const index = new RetainedIndex();
    index.store(pkt('mbox/a/status', 'old'));
    index.store(pkt('mbox/a/status', 'new'));
    index.store(pkt('mbox/a/config/desired'));
    index.store(pkt('mbox/b/status'));
    expect(index.size).toBe(3);
    expect([...index.match(['mbox/a/status'])].map((p) => p.payload.toString())).toEqual(['new']);
    expect(topics(index, ['mbox/a/config/desired', 'mbox/a/commands/req'])).toEqual(['mbox/a/config/desired']);
    index.store(pkt('mbox/a/status', ''));
    expect(topics(index, ['mbox/a/status'])).toEqual([]);
    expect(index.size).toBe(2);
  });

  it('matches wildcard filters like MQTT, each message once even when filters overlap', () => {
    const index = new RetainedIndex();
    for (const t of ['mbox/a/status', 'mbox/b/status', 'mbox/a/config/desired', 'mbox', '$SYS/broker/uptime']) index.store(pkt(t));
    expect(topics(index, ['mbox/+/status'])).toEqual(['mbox/a/status', 'mbox/b/status']);
    expect(topics(index, ['mbox/#'])).toEqual(['mbox', 'mbox/a/config/desired', 'mbox/a/status', 'mbox/b/status']);
    expect(topics(index, ['mbox/a/#', 'mbox/+/status', 'mbox/a/status'])).toEqual(['mbox/a/config/desired', 'mbox/a/status', 'mbox/b/status']);
    expect(topics(index, ['#'])).not.toContain('$SYS/broker/uptime');
    expect(topics(index, ['$SYS/#'])).toEqual(['$SYS/broker/uptime']);
  });

  it('stores a copy, so later changes to the packet object do not leak in', () => {
    const index = new RetainedIndex();
    const p = pkt('mbox/a/status');
    index.store(p);
    p.topic = 'mbox/changed';
    expect(topics(index, ['mbox/a/status'])).toEqual(['mbox/a/status']);
  });
});

describe('filterMatches', () => {
  const m = (f: string, t: string) => filterMatches(f.split('/'), t.split('/'));
  it('follows MQTT 3.1.1 section 4.7', () => {
    expect(m('a/+/c', 'a/b/c')).toBe(true);
    expect(m('a/+/c', 'a/b/d')).toBe(false);
    expect(m('a/+', 'a/b/c')).toBe(false);
    expect(m('a/#', 'a')).toBe(true);
    expect(m('+/+', '/x')).toBe(true);
    expect(m('+', '$SYS')).toBe(false);
    expect(m('a/b', 'a/b/c')).toBe(false);
  });
});
