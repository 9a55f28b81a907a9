import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CoalescedFile, RolloutStore } from '../../../../fleet/rollouts/store.ts';
import { createLogger } from '../../../../shared/log.ts';

describe('rollout state files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mbox-ro-store-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('coalesces a burst of saves into few writes, the last value winning', async () => {
    const f = new CoalescedFile(join(dir, 'x.json'), createLogger('silent'));
    let made = 0;
    const saves = Array.from({ length: 50 }, (_, i) =>
      f.save(() => {
        made++;
        return `${i}\n`;
      }),
    );
    await Promise.all(saves);
    expect(made).toBeLessThanOrEqual(3);
    expect(await readFile(join(dir, 'x.json'), 'utf8')).toBe('49\n');
  });

  it('loads what it saved and refuses a corrupt rollout file by name', async () => {
    const store = new RolloutStore(dir, createLogger('silent'));
    expect(await store.load()).toEqual({ rollouts: [], ledger: [], statuses: new Map() });
    await store.saveLedger(() => [{ deviceId: 'mb-a0001', version: '2.0.0', state: 'failed', reason: 'x', at: 'now', rolloutId: null }]);
    await store.saveStatuses(() => ({ 'mb-a0001': { rolloutId: null, version: null, phase: 'idle', runningVersion: '1.0.0', failedVersions: [], at: '2026-11-22T10:00:00.000Z' } }));
    const back = await store.load();
    expect(back.ledger).toHaveLength(1);
    expect(back.statuses.get('mb-a0001')?.phase).toBe('idle');
    await writeFile(join(dir, 'ro-bad.json'), '{"id": 1}');
    await expect(store.load()).rejects.toThrow(/ro-bad\.json is not a rollout record/);
  });
});
