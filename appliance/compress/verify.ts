// The lossless proof: the pixels of the file about to be written are decoded again, from the
// file's own bytes, and their hash must equal the source pixels' hash.
import { createHash } from 'node:crypto';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import { CodecError, decodeHtj2k, decodeJpegLs, type Codecs } from './codecs.ts';
import { DatasetError, findElement, parseTopLevel, PIXEL_DATA, readFragments } from './elements.ts';
import { canonicalize, frameBytes, type PixelModule, type Samples } from './pixels.ts';
import { TS } from '../../shared/dicom/syntax.ts';
import { geometryOf, nativeSource, type FrameSource } from './source.ts';

export const samplesBytes = (s: Samples): Uint8Array => new Uint8Array(s.buffer, s.byteOffset, s.byteLength);

/** Canonical samples of frame `i`, or throws CodecError with the reason. */
export function canonicalFrame(source: FrameSource, pm: PixelModule, i: number): Samples {
  const { raw, planar } = source.frame(i);
  const c = canonicalize(raw, pm, planar);
  if (typeof c === 'string') throw new CodecError(`frame ${i + 1}: ${c}`);
  return c;
}

/**
 * Hash of native pixels. Canonical when every sample is (Bits Allocated 8/16/32, high bits clean);
 * otherwise the stored bytes themselves: what a byte-for-byte native copy must preserve.
 */
export function hashNative(source: FrameSource, pm: PixelModule): string {
  if (pm.bitsAllocated % 8 === 0) {
    const h = createHash('sha256');
    try {
      for (let i = 0; i < source.frames; i++) h.update(samplesBytes(canonicalFrame(source, pm, i)));
      return h.digest('hex');
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
    }
  }
  const value = source.nativeValue ?? Buffer.alloc(0);
  return createHash('sha256').update(value.subarray(0, Math.ceil(frameBytes(pm) * pm.frames))).digest('hex');
}

/** Hash of the pixels in a built output file, read back from its own bytes. */
function hashOutput(output: Buffer, syntax: string, pm: PixelModule, codecs: Codecs): string {
  const meta = parseFileMeta(output);
  if (meta.transferSyntaxUid !== syntax) throw new DatasetError(`file meta says ${meta.transferSyntaxUid}`, 0);
  const dataset = output.subarray(meta.datasetOffset);
  const top = parseTopLevel(dataset);
  const el = findElement(top, PIXEL_DATA);
  if (!el) throw new DatasetError('output has no Pixel Data', 0);
  if (syntax === TS.ExplicitVRLittleEndian) {
    const source = nativeSource(dataset, el, pm, false, el.vr);
    if (typeof source === 'string') throw new DatasetError(source, el.start);
    return hashNative(source, pm);
  }
  const { offsets, fragments } = readFragments(dataset, el);
  if (fragments.length !== pm.frames) throw new DatasetError(`${fragments.length} fragments for ${pm.frames} frames`, el.start);
  if (offsets.length !== 0 && (offsets.length !== pm.frames || offsets.some((o, i) => o !== fragments[i]!.offset))) {
    throw new DatasetError('Basic Offset Table does not match the fragments', el.start);
  }
  const g = geometryOf(pm);
  const hash = createHash('sha256');
  for (let i = 0; i < pm.frames; i++) {
    const data = fragments[i]!.data;
    const d = syntax === TS.JpegLsLossless ? decodeJpegLs(codecs, data, g) : { ...decodeHtj2k(codecs, data, g), planar: false };
    const c = canonicalize(samplesBytes(d.samples), pm, d.planar);
    if (typeof c === 'string') throw new CodecError(`decoded frame ${i + 1}: ${c}`);
    hash.update(samplesBytes(c));
  }
  return hash.digest('hex');
}

/**
 * Reason the output fails the check, or undefined when its pixels hash to `expected` (hashNative's
 * value for native output, the canonical frames' hash for encapsulated output).
 */
export function verifyOutput(output: Buffer, syntax: string, pm: PixelModule, codecs: Codecs, expected: string): string | undefined {
  let got: string;
  try {
    got = hashOutput(output, syntax, pm, codecs);
  } catch (err) {
    if (err instanceof CodecError || err instanceof DatasetError || (err as Error).name === 'DicomStructureError') {
      return `verification failed: ${(err as Error).message}`;
    }
    throw err;
  }
  return got === expected ? undefined : 'verification failed: decoded pixels differ from the source pixels';
}
