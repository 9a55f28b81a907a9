import { describe, expect, it } from 'vitest';
import { DiskGuard, type DiskState } from '../../../../appliance/store/disk-guard.ts';
import { createLogger } from '../../../../shared/log.ts';

describe('DiskGuard', () => {
  it('trips on the percentage or the minimum free bytes, and clears when space returns', async () => {
    let free = 500;
    const changes: DiskState[] = [];
    const guard = new DiskGuard({ path: '/', highWaterPercent: 90, minFreeBytes: 100, log: createLogger('silent'), probe: async () => ({ freeBytes: free, totalBytes: 1000 }) });
    guard.on('change', (s) => changes.push(s));
    expect((await guard.check()).ok).toBe(true);
    free = 50; // 95 % used
    expect(await guard.check()).toMatchObject({ ok: false, reason: expect.stringMatching(/95.0% used/) });
    free = 500;
    expect((await guard.check()).ok).toBe(true);
    const tight = new DiskGuard({ path: '/', highWaterPercent: 100, minFreeBytes: 600, log: createLogger('silent'), probe: async () => ({ freeBytes: free, totalBytes: 1000 }) });
    expect(await tight.check()).toMatchObject({ ok: false, reason: expect.stringMatching(/only 500 bytes free, minimum 600/) });
    expect(changes.map((c) => c.ok)).toEqual([false, true]);
  });
});
