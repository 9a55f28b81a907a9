// What the receiver refuses, and that refusing loses nothing already accepted: malformed datasets,
// a peer that vanishes mid-object, a disk above its high-water mark.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, DATA_DIR, ensureData, pydicomMalformed } from '../../helpers/data.ts';
import { dcmsend, echoscu, storescu } from '../../helpers/dcmtk.ts';
import { waitUntil } from '../../helpers/ports.ts';
import { writeSyntheticDicom } from '../../helpers/synthetic.ts';

let box: TestBox;
const work = mkdtempSync(join(tmpdir(), 'mbox-refusals-'));
beforeAll(async () => {
  ensureData();
  box = await startBox();
});
afterAll(async () => {
  await box?.stop();
  rmSync(work, { recursive: true, force: true });
});
const peer = () => ({ port: box.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' });

describe('refusals', () => {
  it('refuses each malformed pydicom file the sender transmits, with a status and reason, and keeps running', async () => {
    const outcomes: string[] = [];
    for (const f of pydicomMalformed()) {
      const before = (await box.get<Array<{ id: string }>>('/api/quarantine')).body.length;
      const r = await dcmsend([join(DATA_DIR, f.path)], { ...peer(), extraArgs: ['-ll', 'warn'] });
      const after = (await box.get<Array<{ id: string; reason: string }>>('/api/quarantine')).body;
      const refusedByBox = /Store Failed|status 0x[ac]|Failure/i.test(r.stdout + r.stderr) || after.length > before;
      const notSent = /cannot|no SOP|not sent|error/i.test(r.stderr) && !refusedByBox;
      outcomes.push(`${f.path}: ${refusedByBox ? `box refused (${after[0]?.reason})` : notSent ? 'sender refused' : 'accepted'}`);
      // The box stays up whatever came in.
      expect((await echoscu(peer())).code).toBe(0);
    }
    const refused = outcomes.filter((o) => o.includes('box refused'));
    // Files whose dataset the sender re-encodes into a valid one (bare datasets, repaired meta) may pass;
    // the broken datasets that do reach the box are refused.
    for (const name of ['MR_truncated', 'rtdose_rle.dcm', 'badVR', 'nested_priv_SQ']) {
      const line = outcomes.find((o) => o.includes(name));
      expect(line, outcomes.join('\n')).not.toMatch(/: accepted$/);
    }
    expect(refused.length, outcomes.join('\n')).toBeGreaterThan(0);
    console.log(`malformed via dcmsend:\n  ${outcomes.join('\n  ')}`);
  });

  it('discards a half-received object when the peer disconnects, indexing nothing', async () => {
    const file = join(work, 'big.dcm');
    const uid = await writeSyntheticDicom(file, { frames: 400 }); // ~200 MB
    const sender = spawn('storescu', ['-aec', 'MBOX', '-xe', '127.0.0.1', String(box.dicomPort), file], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
    const tmp = join(box.dataDir, 'tmp');
    await waitUntil(async () => readdirSync(tmp).some((n) => statSync(join(tmp, n)).size > 1_000_000), 20_000, 'object streaming to disk');
    sender.kill('SIGKILL');
    await waitUntil(async () => readdirSync(tmp).length === 0, 5_000, 'partial object removed');
    expect((await box.get(`/api/instances/${uid}`)).status).toBe(404);
    expect((await box.get<string>('/metrics')).body).toMatch(/mbox_ingest_objects_total\{via="dimse",outcome="aborted"\} [1-9]/);
    expect((await echoscu(peer())).code).toBe(0);
  });
});

describe('disk guard', () => {
  it('answers 0xA700 above the high-water mark and resumes by itself when space returns', async () => {
    // Real disk: set the minimum just below today's free space, then take that space with a file.
    const fs = statfsSync(work);
    const free = fs.bavail * fs.bsize;
    const watch = mkdtempSync(join(work, 'watch-'));
    const guarded = await startBox(['--disk-min-free-bytes', String(free - 1024 ** 3), '--disk-high-water-percent', '100', '--watch-dirs', watch, '--watch-settle-ms', '100', '--watch-interval-ms', '100']);
    const filler = join(work, 'filler');
    try {
      const base = { port: guarded.dicomPort, host: '127.0.0.1', calledAe: 'MBOX' };
      const [a, b] = daikonSeries();
      expect((await storescu([join(DATA_DIR, a!.path)], base)).code).toBe(0);

      expect(spawnSync('fallocate', ['-l', String(2 * 1024 ** 3), filler]).status).toBe(0);
      await waitUntil(async () => (await guarded.get<{ disk: { accepting: boolean } }>('/healthz')).body.disk.accepting === false, 5_000, 'guard trips');
      const refused = await storescu([join(DATA_DIR, b!.path)], { ...base, extraArgs: ['-v'] });
      expect(refused.stdout + refused.stderr).toMatch(/Refused: OutOfResources/);
      expect((await guarded.get(`/api/instances/${b!.sopInstance}`)).status).toBe(404);
      // the watcher pauses too: a dropped file stays where it is
      spawnSync('cp', [join(DATA_DIR, b!.path), join(watch, 'waiting.dcm')]);
      await new Promise((r) => setTimeout(r, 600));
      expect(readdirSync(watch)).toEqual(['waiting.dcm']);

      rmSync(filler);
      await waitUntil(async () => (await guarded.get<{ disk: { accepting: boolean } }>('/healthz')).body.disk.accepting, 5_000, 'guard clears');
      await waitUntil(async () => readdirSync(watch).length === 0, 5_000, 'watcher resumed');
      expect((await storescu([join(DATA_DIR, daikonSeries()[2]!.path)], base)).code).toBe(0);
      expect((await guarded.get(`/api/instances/${b!.sopInstance}`)).status).toBe(200);
    } finally {
      rmSync(filler, { force: true });
      await guarded.stop();
    }
  });
});
