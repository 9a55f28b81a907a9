// The Image Pixel module as the transcoder needs it, and the canonical form of a frame that both
// sides of the lossless check are reduced to: samples interleaved colour-by-pixel, little endian,
// each masked to Bits Stored (the bits above High Bit carry no pixel value).
import { findElement, readString, readUs, type TopLevel } from './elements.ts';

export interface PixelModule {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometric: string;
  /** 1 = colour-by-plane. */
  planar: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  signed: boolean;
  frames: number;
}

export type Samples = Uint8Array | Uint16Array | Uint32Array;

/** Reads the module; a string is the reason the pixel data cannot be interpreted. */
export function readPixelModule(buf: Buffer, top: TopLevel): PixelModule | string {
  const us = (tag: number) => readUs(buf, findElement(top, tag));
  const rows = us(0x00280010);
  const columns = us(0x00280011);
  const bitsAllocated = us(0x00280100);
  const bitsStored = us(0x00280101) ?? bitsAllocated;
  const highBit = us(0x00280102) ?? (bitsStored === undefined ? undefined : bitsStored - 1);
  if (!rows || !columns || !bitsAllocated || !bitsStored || highBit === undefined) {
    return 'Image Pixel module incomplete (Rows, Columns, Bits Allocated or Bits Stored missing or zero)';
  }
  const framesText = readString(buf, findElement(top, 0x00280008), true) ?? '';
  const frames = framesText === '' ? 1 : Number(framesText);
  if (!/^\+?[0-9]+$/.test(framesText === '' ? '1' : framesText) || !Number.isSafeInteger(frames) || frames < 1) {
    return `invalid Number of Frames "${framesText}"`;
  }
  const pm: PixelModule = {
    rows,
    columns,
    samplesPerPixel: us(0x00280002) ?? 1,
    photometric: readString(buf, findElement(top, 0x00280004)) ?? '',
    planar: us(0x00280006) ?? 0,
    bitsAllocated,
    bitsStored,
    highBit,
    signed: us(0x00280103) === 1,
    frames,
  };
  if (pm.bitsStored > pm.bitsAllocated || pm.highBit >= pm.bitsAllocated) return `Bits Stored ${pm.bitsStored} / High Bit ${pm.highBit} do not fit Bits Allocated ${pm.bitsAllocated}`;
  if (pm.samplesPerPixel !== 1 && pm.samplesPerPixel !== 3) return `Samples per Pixel ${pm.samplesPerPixel} is not 1 or 3`;
  return pm;
}

/** Bytes of one native frame; fractional for Bits Allocated 1 (frames are bit-packed end to end). */
export function frameBytes(pm: PixelModule): number {
  // Native 4:2:2 stores two luminance samples and one pair of chroma samples per two pixels.
  const perPixel = pm.samplesPerPixel === 3 && pm.photometric.endsWith('_422') ? 2 : pm.samplesPerPixel;
  return (pm.rows * pm.columns * perPixel * pm.bitsAllocated) / 8;
}

export function sampleCount(pm: PixelModule): number {
  return pm.rows * pm.columns * pm.samplesPerPixel;
}

/**
 * Why the JPEG-LS / HTJ2K encoders cannot take this image losslessly and validly, or undefined.
 * Follows PS3.5 tables 8.2.3-1 and 8.2.4-1 plus what the WASM builds can do.
 */
export function encodeRestriction(pm: PixelModule, codec: 'jpeg-ls' | 'htj2k'): string | undefined {
  const name = codec === 'jpeg-ls' ? 'JPEG-LS' : 'HTJ2K';
  if (pm.bitsAllocated !== 8 && pm.bitsAllocated !== 16) return `Bits Allocated ${pm.bitsAllocated}: ${name} encoding supports 8 or 16`;
  if (pm.highBit !== pm.bitsStored - 1) return `High Bit ${pm.highBit} is not Bits Stored - 1 (${pm.bitsStored - 1}): samples are not low-aligned`;
  if (codec === 'jpeg-ls' && pm.bitsStored < 2) return `Bits Stored ${pm.bitsStored}: JPEG-LS needs at least 2`;
  const pi = pm.photometric;
  if (pm.samplesPerPixel === 1) {
    if (pi !== 'MONOCHROME1' && pi !== 'MONOCHROME2' && pi !== 'PALETTE COLOR') return `Photometric Interpretation ${pi || '(absent)'} with 1 sample per pixel`;
    if (pi === 'PALETTE COLOR' && pm.signed) return 'signed PALETTE COLOR pixel data';
    if (codec === 'htj2k' && pm.signed && pm.bitsStored <= 8) return 'signed samples of 8 bits or fewer: the openjph build codes them as unsigned bytes';
    return undefined;
  }
  if (pi === 'YBR_FULL_422' || pi === 'YBR_PARTIAL_422' || pi === 'YBR_PARTIAL_420') {
    return `${pi} pixel data is chroma-subsampled; ${name} lossless would have to upsample it (changing the stored pixels)`;
  }
  if (pi !== 'RGB' && pi !== 'YBR_FULL') return `Photometric Interpretation ${pi || '(absent)'} with 3 samples per pixel is not allowed with ${name}`;
  if (pm.signed) return 'signed colour pixel data is not allowed in JPEG-LS / JPEG 2000';
  if (pi === 'YBR_FULL' && pm.bitsAllocated !== 8) return 'YBR_FULL with more than 8 bits is not allowed with JPEG-LS / JPEG 2000';
  if (codec === 'htj2k' && pm.bitsAllocated !== 8) return 'colour samples above 8 bits: the openjph build encodes only the first component of each line correctly';
  // The openjph build codes colour correctly only with the reversible colour transform (see
  // codecs.ts), which PS3.5 allows for RGB only (labelled YBR_RCT).
  if (codec === 'htj2k' && pi !== 'RGB') return `${pi} colour: HTJ2K here needs the reversible colour transform, which applies to RGB only`;
  return undefined;
}

/**
 * Byte-swaps a big endian native Pixel Data value in place. Samples wider than 8 bits swap by
 * their own width (a 32-bit dose grid is four-byte big endian, not two words); 8-bit samples in
 * an OW value swap as words, as OW demands.
 */
export function swapPixelData(value: Buffer, bitsAllocated: number, vr: string | undefined): Buffer {
  const out = Buffer.from(value);
  const unit = bitsAllocated > 8 ? bitsAllocated / 8 : vr === 'OW' ? 2 : 1;
  const whole = out.length - (out.length % unit);
  if (unit === 2) out.subarray(0, whole).swap16();
  else if (unit === 4) out.subarray(0, whole).swap32();
  else if (unit === 8) out.subarray(0, whole).swap64();
  return out;
}

/**
 * Reduces one frame of raw little endian samples to canonical form. A string is returned when a
 * sample has bits above High Bit that are neither zero nor the sign extension of a signed value:
 * a codec working at Bits Stored precision would drop them (overlay bits, or garbage).
 */
export function canonicalize(raw: Uint8Array, pm: PixelModule, planar: boolean): Samples | string {
  const n = sampleCount(pm);
  const bytes = pm.bitsAllocated / 8;
  if (raw.length < n * bytes) return `frame has ${raw.length} bytes, ${n * bytes} expected`;
  let src: Samples;
  if (bytes === 1) src = raw;
  else {
    // Typed views need aligned offsets; a Buffer slice of the file often is not.
    const aligned = raw.byteOffset % bytes === 0 ? raw : new Uint8Array(raw.subarray(0, n * bytes));
    src = bytes === 2 ? new Uint16Array(aligned.buffer, aligned.byteOffset, n) : new Uint32Array(aligned.buffer, aligned.byteOffset, n);
  }
  // Every bit is a pixel bit: nothing to check or mask, and the samples can be used in place.
  if (pm.bitsStored === pm.bitsAllocated && !(planar && pm.samplesPerPixel > 1)) return src.length === n ? src : src.subarray(0, n);
  const out: Samples = bytes === 1 ? new Uint8Array(n) : bytes === 2 ? new Uint16Array(n) : new Uint32Array(n);
  const mask = pm.bitsStored >= 32 ? 0xffffffff : 2 ** pm.bitsStored - 1;
  const full = bytes === 4 ? 0xffffffff : (1 << (8 * bytes)) - 1;
  const high = (full - mask) >>> 0;
  const sign = 2 ** (pm.bitsStored - 1);
  const spp = pm.samplesPerPixel;
  const pixels = pm.rows * pm.columns;
  let bad = 0;
  const check = (v: number): void => {
    const h = (v & high) >>> 0;
    if (h !== 0 && !(pm.signed && h === high && (v & sign) !== 0)) bad++;
  };
  if (planar && spp > 1) {
    // Colour-by-plane input: sample c of pixel p sits at c * pixels + p.
    for (let c = 0; c < spp; c++) {
      for (let p = 0, i = c; p < pixels; p++, i += spp) {
        const v = src[c * pixels + p]!;
        if ((v & high) !== 0) check(v);
        out[i] = v & mask;
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = src[i]!;
      if ((v & high) !== 0) check(v);
      out[i] = v & mask;
    }
  }
  if (bad > 0) return `${bad} samples have bits set above High Bit ${pm.highBit} (overlay or unused bits a ${pm.bitsStored}-bit codec would drop)`;
  return out;
}

/** Canonical samples back to stored form: signed values sign-extended into the unused high bits. */
export function toStored(samples: Samples, pm: PixelModule): Uint8Array {
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
  if (!pm.signed || pm.bitsStored >= pm.bitsAllocated) return bytes;
  const out = samples.slice();
  const sign = 2 ** (pm.bitsStored - 1);
  const ext = pm.bitsAllocated === 32 ? (0xffffffff - (2 ** pm.bitsStored - 1)) >>> 0 : (1 << pm.bitsAllocated) - (1 << pm.bitsStored);
  for (let i = 0; i < out.length; i++) if ((out[i]! & sign) !== 0) out[i] = (out[i]! | ext) >>> 0;
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
