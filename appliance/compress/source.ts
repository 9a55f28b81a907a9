// Where the frames of a stored object come from: slices of native Pixel Data, or fragments of
// encapsulated Pixel Data decoded losslessly with what m-box has (CharLS, OpenJPH, its own RLE).
import { TS } from '../../shared/dicom/syntax.ts';
import { CodecError, decodeHtj2k, decodeJpegLs, type Codecs, type Geometry } from './codecs.ts';
import { allZero, readFragments, valueOf, type Element } from './elements.ts';
import { frameBytes, sampleCount, swapPixelData, type PixelModule } from './pixels.ts';
import { decodeRleFrame } from './rle.ts';

export interface RawFrame {
  /** Little endian samples at Bits Allocated width. */
  raw: Uint8Array;
  /** Colour-by-plane. */
  planar: boolean;
}

export interface FrameSource {
  frames: number;
  /** Decodes or slices frame `i`; throws CodecError when a compressed frame cannot be decoded losslessly. */
  frame(i: number): RawFrame;
  /** For native sources: the whole value in little endian order (what a native output copies). */
  nativeValue?: Buffer;
  /** Photometric Interpretation of the decoded pixels when decoding changes it (YBR_RCT → RGB). */
  photometric?: string;
}

/** Encapsulated syntaxes m-box can decode without loss. */
export const DECODABLE: ReadonlySet<string> = new Set([TS.JpegLsLossless, TS.HtJpeg2000Lossless, TS.HtJpeg2000LosslessRpcl, TS.Rle]);

export function geometryOf(pm: PixelModule): Geometry {
  return { width: pm.columns, height: pm.rows, components: pm.samplesPerPixel, bitsAllocated: pm.bitsAllocated, bitsStored: pm.bitsStored, signed: pm.signed };
}

/** Frames of native Pixel Data, or the reason they cannot be cut out of it. */
export function nativeSource(buf: Buffer, el: Element, pm: PixelModule, bigEndian: boolean, vr: string | undefined): FrameSource | string {
  if (el.undefinedLength) return 'native transfer syntax with encapsulated Pixel Data';
  const stored = valueOf(buf, el);
  const value = bigEndian ? swapPixelData(stored, pm.bitsAllocated, vr ?? el.vr) : stored;
  const need = Math.ceil(frameBytes(pm) * pm.frames);
  if (value.length < need) return `Pixel Data has ${value.length} bytes, Rows × Columns × Samples × Bits Allocated × Frames needs ${need}`;
  // Bytes past the last frame are dropped by every output: fine for zero padding (an odd value's
  // pad byte, or a writer's block padding), not for anything else.
  if (value.length > need && !allZero(value.subarray(need))) return `Pixel Data has ${value.length - need} non-padding bytes past its ${pm.frames} frame(s)`;
  const size = frameBytes(pm);
  return {
    frames: pm.frames,
    nativeValue: value,
    frame: (i) => {
      if (!Number.isInteger(size)) throw new CodecError(`Bits Allocated ${pm.bitsAllocated} frames are not byte-aligned`);
      return { raw: value.subarray(i * size, (i + 1) * size), planar: pm.planar === 1 };
    },
  };
}

/** Groups fragments into frames: one each, all for a single frame, or by the offset table. */
function framesOfFragments(buf: Buffer, el: Element, frames: number): Buffer[] | string {
  const { offsets, fragments } = readFragments(buf, el);
  if (fragments.length === frames) return fragments.map((f) => f.data);
  if (frames === 1) return [Buffer.concat(fragments.map((f) => f.data))];
  if (offsets.length !== frames) return `${fragments.length} fragments for ${frames} frames and no usable Basic Offset Table`;
  const out: Buffer[] = [];
  for (let i = 0; i < frames; i++) {
    const from = offsets[i]!;
    const to = offsets[i + 1] ?? Infinity;
    const parts = fragments.filter((f) => f.offset >= from && f.offset < to);
    if (parts.length === 0 || parts[0]!.offset !== from) return `Basic Offset Table entry ${i} (${from}) does not start a fragment`;
    out.push(Buffer.concat(parts.map((f) => f.data)));
  }
  return out;
}

/** Frames of lossless encapsulated Pixel Data, decoded on demand. */
export function encapsulatedSource(buf: Buffer, el: Element, pm: PixelModule, syntax: string, codecs: Codecs): FrameSource | string {
  if (!DECODABLE.has(syntax)) return 'no lossless decoder for this syntax';
  if (!el.undefinedLength) return 'encapsulated transfer syntax with native Pixel Data';
  const data = framesOfFragments(buf, el, pm.frames);
  if (typeof data === 'string') return data;
  const g = geometryOf(pm);
  const source: FrameSource = { frames: pm.frames, frame: () => ({ raw: new Uint8Array(0), planar: false }) };
  if (syntax === TS.Rle) {
    if (pm.bitsAllocated % 8 !== 0) return `RLE with Bits Allocated ${pm.bitsAllocated}`;
    source.frame = (i) => {
      const raw = decodeRleFrame(data[i]!, pm.rows * pm.columns, pm.samplesPerPixel, pm.bitsAllocated / 8);
      if (typeof raw === 'string') throw new CodecError(`frame ${i + 1}: ${raw}`);
      return { raw, planar: false };
    };
    return source;
  }
  if (pm.bitsAllocated !== 8 && pm.bitsAllocated !== 16) return `Bits Allocated ${pm.bitsAllocated} in a JPEG-LS / HTJ2K source`;
  const bytes = (s: { byteOffset: number; byteLength: number; buffer: ArrayBufferLike }) => new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
  if (syntax === TS.JpegLsLossless) {
    source.frame = (i) => {
      const d = decodeJpegLs(codecs, data[i]!, g);
      return { raw: bytes(d.samples), planar: d.planar };
    };
    return source;
  }
  // HTJ2K: a reversible colour transform (PI YBR_RCT) is undone by the decoder, giving RGB.
  if (pm.photometric === 'YBR_ICT') return 'YBR_ICT is an irreversible colour transform';
  if (pm.photometric === 'YBR_RCT') source.photometric = 'RGB';
  source.frame = (i) => {
    const d = decodeHtj2k(codecs, data[i]!, g);
    if (d.colorTransform !== (pm.photometric === 'YBR_RCT')) {
      throw new CodecError(`frame ${i + 1}: codestream colour transform ${d.colorTransform ? 'on' : 'off'} but Photometric Interpretation ${pm.photometric}`);
    }
    if (d.samples.length !== sampleCount(pm)) throw new CodecError(`frame ${i + 1} decoded to ${d.samples.length} samples`);
    return { raw: bytes(d.samples), planar: false };
  };
  return source;
}
