// The lossless check is the last line of defence against a codec that silently changes pixels:
// here the encoder is made to change one sample, and the object must go as received.
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { transcodeBuffer, transcodeFile } from '../../../../appliance/compress/transcode.ts';
import type { Samples } from '../../../../appliance/compress/pixels.ts';
import { named } from './corpus.ts';
import { readFileSync } from 'node:fs';

vi.mock('../../../../appliance/compress/codecs.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../../appliance/compress/codecs.ts')>();
  // Flips the lowest bit of the first sample before encoding: a valid stream of the wrong pixels.
  const tamper = (s: Samples): Samples => {
    const copy = s.slice();
    copy[0] = copy[0]! ^ 1;
    return copy;
  };
  return {
    ...real,
    encodeJpegLs: (c: Parameters<typeof real.encodeJpegLs>[0], s: Samples, g: Parameters<typeof real.encodeJpegLs>[2]) => real.encodeJpegLs(c, tamper(s), g),
  };
});

const work = mkdtempSync(join(tmpdir(), 'compress-verify-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('verification', () => {
  it("reports 'verification failed' and writes nothing when decoded pixels differ", async () => {
    const f = named('pydicom/CT_small.dcm');
    const { result, output } = await transcodeBuffer(readFileSync(f.file), 'jpeg-ls');
    expect(result).toMatchObject({ outcome: 'unchanged', transferSyntaxUid: f.transferSyntax, size: f.size });
    expect(result.reason).toBe('verification failed: decoded pixels differ from the source pixels');
    expect(output).toBeUndefined();
    const out = join(work, 'ct.dcm');
    await transcodeFile({ inputPath: f.file, outputPath: out, target: 'jpeg-ls' });
    expect(existsSync(out)).toBe(false);
  });

  it('leaves the other codec alone', async () => {
    const { result } = await transcodeBuffer(readFileSync(named('pydicom/CT_small.dcm').file), 'htj2k');
    expect(result.outcome).toBe('transcoded');
  });
});
