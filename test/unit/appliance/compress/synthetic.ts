// Small synthetic images for the cases the real test data lacks: Bits Stored below Bits
// Allocated (signed and unsigned, clean and dirty high bits), colour-by-plane, many frames.
import { buildFileMeta } from '../../../../shared/dicom/header.ts';
import { elementBytes as el } from '../../../../shared/dicom/encode.ts';

export interface ImageSpec {
  rows: number;
  columns: number;
  samplesPerPixel?: number;
  photometric?: string;
  planar?: number;
  bitsAllocated: number;
  bitsStored: number;
  signed?: boolean;
  frames?: number;
  /** Stored sample values, in the order they go into Pixel Data. */
  pixels: Uint8Array | Uint16Array;
  transferSyntaxUid?: string;
}

const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
};

export const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7';

/** An explicit VR little endian Part 10 file holding `spec`'s pixels. */
export function syntheticImage(spec: ImageSpec, sopInstanceUid = '2.25.1234567890'): Buffer {
  const spp = spec.samplesPerPixel ?? 1;
  const pixels = Buffer.from(spec.pixels.buffer, spec.pixels.byteOffset, spec.pixels.byteLength);
  const elements = [
    el(0x00080016, 'UI', str(SOP_CLASS, '\0')),
    el(0x00080018, 'UI', str(sopInstanceUid, '\0')),
    el(0x00080060, 'CS', str('OT')),
    el(0x00100010, 'PN', str('SYNTHETIC^COMPRESS')),
    el(0x0020000d, 'UI', str('2.25.1', '\0')),
    el(0x0020000e, 'UI', str('2.25.2', '\0')),
    el(0x00280002, 'US', us(spp)),
    el(0x00280004, 'CS', str(spec.photometric ?? (spp === 3 ? 'RGB' : 'MONOCHROME2'))),
    ...(spp === 3 ? [el(0x00280006, 'US', us(spec.planar ?? 0))] : []),
    ...(spec.frames ? [el(0x00280008, 'IS', str(String(spec.frames)))] : []),
    el(0x00280010, 'US', us(spec.rows)),
    el(0x00280011, 'US', us(spec.columns)),
    el(0x00280100, 'US', us(spec.bitsAllocated)),
    el(0x00280101, 'US', us(spec.bitsStored)),
    el(0x00280102, 'US', us(spec.bitsStored - 1)),
    el(0x00280103, 'US', us(spec.signed ? 1 : 0)),
    el(0x7fe00010, spec.bitsAllocated > 8 ? 'OW' : 'OB', pixels.length % 2 ? Buffer.concat([pixels, Buffer.alloc(1)]) : pixels),
  ];
  return Buffer.concat([buildFileMeta(SOP_CLASS, sopInstanceUid, spec.transferSyntaxUid ?? '1.2.840.10008.1.2.1'), ...elements]);
}

/** A smooth gradient with noise: compressible like a real image, never constant. */
export function gradient(n: number, bits: number, seed = 1): number[] {
  let x = seed;
  const max = 2 ** bits - 1;
  return Array.from({ length: n }, (_, i) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return Math.min(max, Math.round((Math.sin(i / 97) * 0.4 + 0.5) * max) + (x % 7));
  });
}

/** Signed values of `bits` bits, as two's complement in 16 bits: sign-extended or not. */
export function signed16(n: number, bits: number, signExtend: boolean): Uint16Array {
  const half = 2 ** (bits - 1);
  const out = new Uint16Array(n);
  gradient(n, bits).forEach((v, i) => {
    const s = v - half; // spans -half .. half-1
    out[i] = signExtend ? s & 0xffff : s & (2 ** bits - 1);
  });
  return out;
}
