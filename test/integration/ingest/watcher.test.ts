// The watch folder with real files: what a modality exporting to a share would do to it.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../../../shared/types/store.ts';
import { startBox, type TestBox } from '../../helpers/box.ts';
import { daikonSeries, DATA_DIR, ensureData, pydicomMalformed, pydicomNotDicom } from '../../helpers/data.ts';
import { waitUntil } from '../../helpers/ports.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let box: TestBox;
let watch: string;

beforeAll(async () => {
  ensureData();
  watch = mkdtempSync(join(tmpdir(), 'mbox-watch-'));
  box = await startBox(['--watch-dirs', watch, '--watch-settle-ms', '400', '--watch-interval-ms', '100', '--watch-give-up-ms', '1500']);
});
afterAll(async () => {
  await box?.stop();
});

const indexed = async (uid: string) => (await box.get(`/api/instances/${uid}`)).status === 200;
const quarantine = async () => (await box.get<Array<{ reason: string; source: { path?: string } }>>('/api/quarantine')).body;

describe('watch folder', () => {
  it('stores exported files byte-exact, then removes the originals', async () => {
    const series = daikonSeries();
    mkdirp(join(watch, 'exam1'));
    for (const f of series) copyFileSync(join(DATA_DIR, f.path), join(watch, 'exam1', basename(f.path)));
    await waitUntil(async () => (await Promise.all(series.map((f) => indexed(f.sopInstance!)))).every(Boolean), 20_000, 'series indexed');
    for (const f of series) {
      const record = (await box.get<InstanceRecord>(`/api/instances/${f.sopInstance}`)).body;
      // a file comes in as it is: the whole stored file equals the exported one
      expect(sha(readFileSync(join(box.dataDir, record.path)))).toBe(f.sha256);
      expect(record.history[0]?.source).toEqual({ kind: 'watch', path: join('exam1', basename(f.path)) });
    }
    await waitUntil(async () => readdirSync(join(watch, 'exam1')).length === 0, 5_000, 'originals removed');
  });

  it('does not take a file while it is being written, nor one still named .part', async () => {
    const f = daikonSeries()[0]!;
    const bytes = readFileSync(join(DATA_DIR, f.path));
    // a second copy under a fresh name; the UID is already stored, so the outcome is a duplicate
    const target = join(watch, 'slow.dcm');
    const fd = openSync(target, 'w');
    writeSync(fd, bytes.subarray(0, 5000));
    await sleep(1000); // the writer stalls past the settle time (400 ms), within the give-up time (1500 ms)
    writeSync(fd, bytes.subarray(5000));
    closeSync(fd);
    // while the file was cut off it may be looked at, but never quarantined nor removed mid-write
    expect((await quarantine()).some((q) => q.source.path === 'slow.dcm')).toBe(false);
    await waitUntil(async () => !existsSync(target), 10_000, 'completed file ingested');
    const record = (await box.get<InstanceRecord>(`/api/instances/${f.sopInstance}`)).body;
    expect(record.history.at(-1)).toMatchObject({ event: 'duplicate-received', source: { kind: 'watch', path: 'slow.dcm' } });

    const part = join(watch, 'incoming.dcm.part');
    writeFileSync(part, readFileSync(join(DATA_DIR, daikonSeries()[1]!.path)));
    await sleep(1200);
    expect(existsSync(part)).toBe(true);
    renameSync(part, join(watch, 'incoming.dcm'));
    await waitUntil(async () => !existsSync(join(watch, 'incoming.dcm')), 5_000, 'renamed-in file ingested');
  });

  it('quarantines non-DICOM and malformed files, each with its reason, and indexes none of them', async () => {
    const bad = [...pydicomMalformed(), ...pydicomNotDicom()];
    mkdirp(join(watch, 'bad'));
    for (const f of bad) copyFileSync(join(DATA_DIR, f.path), join(watch, 'bad', basename(f.path)));
    await waitUntil(async () => readdirSync(join(watch, 'bad')).length === 0, 20_000, 'bad files moved out');
    const q = await quarantine();
    for (const f of bad) {
      const entry = q.find((e) => e.source.path === join('bad', basename(f.path)));
      expect(entry, `${f.path} quarantined`).toBeDefined();
      expect(entry!.reason.length).toBeGreaterThan(10);
      if (f.sopInstance && f.category === 'pydicom-malformed' && !daikonSeries().some((d) => d.sopInstance === f.sopInstance)) {
        const r = (await box.get<InstanceRecord>(`/api/instances/${f.sopInstance}`)).body;
        expect(r.history?.some((h) => h.source?.kind === 'watch' && h.source.path.startsWith('bad/')) ?? false, `${f.path} not indexed`).toBe(false);
      }
    }
    // the reason file sits beside the quarantined bytes
    const files = readdirSync(join(box.dataDir, 'quarantine'));
    expect(files.filter((n) => n.endsWith('.json')).length).toBe(files.filter((n) => n.endsWith('.dcm')).length);
    expect(q.find((e) => e.source.path === 'bad/MR_truncated.dcm')?.reason).toMatch(/truncated/);
    expect(q.find((e) => e.source.path === 'bad/README.txt')?.reason).toMatch(/not a DICOM Part 10 file/);
  });
});

const mkdirp = (dir: string) => mkdirSync(dir, { recursive: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
