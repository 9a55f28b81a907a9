import { describe, expect, it } from 'vitest';
import { RefusalLog } from '../../../../fleet/broker/refusals.ts';
import type { Logger } from '../../../../shared/log.ts';

describe('RefusalLog', () => {
  it('counts every refusal but logs at most a burst per window, then reports what it suppressed', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = { warn: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger;
    const r = new RefusalLog(log, { burst: 3, windowMs: 50 });
    for (let i = 0; i < 10; i++) r.note('connect:revoked', { i }, 'refused');
    r.note('publish', {}, 'refused');
    expect(r.counts()).toEqual({ 'connect:revoked': 10, publish: 1 });
    expect(lines).toHaveLength(3);
    const until = Date.now() + 60;
    while (Date.now() < until) {
      /* let the window pass */
    }
    r.note('subscribe', {}, 'refused');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatchObject({ refusal: 'subscribe', suppressedBefore: 8 });
  });
});
