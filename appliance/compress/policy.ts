// What each transfer syntax means for the transcoder: the target UIDs, which sources are native,
// lossless-encapsulated or lossy, and readable names for the reasons it records.
import type { TargetSyntax } from '../../shared/types/pipeline.ts';
import { TS } from '../../shared/dicom/syntax.ts';

export const TARGET_UID: Readonly<Record<Exclude<TargetSyntax, 'as-received'>, string>> = {
  'jpeg-ls': TS.JpegLsLossless,
  htj2k: TS.HtJpeg2000Lossless,
  'explicit-le': TS.ExplicitVRLittleEndian,
};

const NAMES: Record<string, string> = {
  [TS.ImplicitVRLittleEndian]: 'Implicit VR Little Endian',
  [TS.ExplicitVRLittleEndian]: 'Explicit VR Little Endian',
  [TS.DeflatedExplicitVRLittleEndian]: 'Deflated Explicit VR Little Endian',
  [TS.ExplicitVRBigEndian]: 'Explicit VR Big Endian',
  [TS.JpegBaseline]: 'JPEG Baseline',
  [TS.JpegExtended]: 'JPEG Extended',
  [TS.JpegLossless]: 'JPEG Lossless',
  [TS.JpegLosslessSV1]: 'JPEG Lossless SV1',
  [TS.JpegLsLossless]: 'JPEG-LS Lossless',
  [TS.JpegLsNearLossless]: 'JPEG-LS Near-Lossless',
  [TS.Jpeg2000Lossless]: 'JPEG 2000 Lossless',
  [TS.Jpeg2000]: 'JPEG 2000',
  [TS.HtJpeg2000Lossless]: 'HTJ2K Lossless',
  [TS.HtJpeg2000LosslessRpcl]: 'HTJ2K Lossless RPCL',
  [TS.HtJpeg2000]: 'HTJ2K',
  [TS.Rle]: 'RLE Lossless',
  [TS.Mpeg2]: 'MPEG2',
  [TS.Mpeg4]: 'MPEG-4 AVC/H.264',
  [TS.H265]: 'HEVC/H.265',
};

export function syntaxName(uid: string): string {
  return NAMES[uid] ?? uid;
}

export type SourceKind = 'native' | 'lossless-encapsulated' | 'lossy' | 'unknown';

const NATIVE = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian, TS.DeflatedExplicitVRLittleEndian, TS.ExplicitVRBigEndian]);
// JPEG processes 14/14 SV1 (and the retired lossless 15, 28, 29), RLE, JPEG-LS and JPEG 2000
// lossless, J2K Part 2 lossless (.92), HTJ2K lossless, JPEG XL lossless (.110).
const LOSSLESS = new Set<string>(['57', '58', '65', '66', '70', '80', '90', '92', '110', '201', '202'].map((n) => `1.2.840.10008.1.2.4.${n}`).concat(TS.Rle));
// JPEG lossy processes (.50–.64 apart from the lossless ones), JPEG-LS near-lossless, JPEG 2000
// and HTJ2K that may be lossy, MPEG/H.26x video, JPEG XL recompression and lossy JPEG XL.
const LOSSY = /^1\.2\.840\.10008\.1\.2\.4\.(5[0-9]|6[0-4]|81|91|93|203|10[0-9]|111|112)$/;

export function classify(uid: string): SourceKind {
  if (NATIVE.has(uid)) return 'native';
  if (LOSSLESS.has(uid)) return 'lossless-encapsulated';
  if (LOSSY.test(uid)) return 'lossy';
  return 'unknown';
}
