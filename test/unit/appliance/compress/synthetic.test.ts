import { describe, expect, it } from 'vitest';
import { transcodeBuffer } from '../../../../appliance/compress/transcode.ts';
import { findElement, parseTopLevel, PIXEL_DATA, readFragments, readString, readUs } from '../../../../appliance/compress/elements.ts';
import { parseFileMeta } from '../../../../shared/dicom/header.ts';
import { gradient, signed16, syntheticImage, type ImageSpec } from './synthetic.ts';

const TARGETS = ['jpeg-ls', 'htj2k'] as const;
const R = 48;
const C = 40;

function mono16(bitsStored: number, pixels: Uint16Array, signed = false, frames?: number): ImageSpec {
  return { rows: R, columns: C, bitsAllocated: 16, bitsStored, signed, pixels, frames };
}

function fragmentsOf(out: Buffer) {
  const dataset = out.subarray(parseFileMeta(out).datasetOffset);
  const top = parseTopLevel(dataset);
  return { dataset, top, ...readFragments(dataset, findElement(top, PIXEL_DATA)!) };
}

/** Sample precision P from a JPEG-LS SOF55 marker segment (FF F7, length, P, ...). */
function jpegLsPrecision(frame: Buffer): number {
  const at = frame.indexOf(Buffer.from([0xff, 0xf7]));
  return frame[at + 4]!;
}

describe.each(TARGETS)('Bits Stored below Bits Allocated, %s', (target) => {
  it('codes unsigned 12-bit samples at 12 bits', async () => {
    const { result, output } = await transcodeBuffer(syntheticImage(mono16(12, Uint16Array.from(gradient(R * C, 12)))), target);
    expect(result.outcome).toBe('transcoded');
    if (target === 'jpeg-ls') expect(jpegLsPrecision(fragmentsOf(output!).fragments[0]!.data)).toBe(12);
  });

  it('refuses unsigned samples with bits set above High Bit (they would be lost)', async () => {
    const px = Uint16Array.from(gradient(R * C, 12));
    px[100] = px[100]! | 0x8000;
    const { result } = await transcodeBuffer(syntheticImage(mono16(12, px)), target);
    expect(result).toMatchObject({ outcome: 'unchanged' });
    expect(result.reason).toMatch(/1 samples have bits set above High Bit 11/);
  });

  it('takes signed 12-bit samples sign-extended or not, with the same pixel hash', async () => {
    const extended = await transcodeBuffer(syntheticImage(mono16(12, signed16(R * C, 12, true), true)), target);
    const plain = await transcodeBuffer(syntheticImage(mono16(12, signed16(R * C, 12, false), true)), target);
    expect(extended.result.outcome).toBe('transcoded');
    expect(plain.result.outcome).toBe('transcoded');
    expect(extended.result.pixelSha256).toBe(plain.result.pixelSha256);
  });

  it('refuses signed samples whose high bits are not a sign extension', async () => {
    const px = signed16(R * C, 12, true);
    const positive = px.findIndex((v) => (v & 0x800) === 0);
    px[positive] = px[positive]! | 0xf000;
    const { result } = await transcodeBuffer(syntheticImage(mono16(12, px, true)), target);
    expect(result.reason).toMatch(/bits set above High Bit/);
  });

  it('takes full-range signed 16-bit samples', async () => {
    const { result } = await transcodeBuffer(syntheticImage(mono16(16, signed16(R * C, 16, true), true)), target);
    expect(result.outcome).toBe('transcoded');
  });

  it('writes N fragments and their offsets for N frames', async () => {
    const frames = 5;
    const { result, output } = await transcodeBuffer(syntheticImage(mono16(16, Uint16Array.from(gradient(R * C * frames, 16)), false, frames)), target);
    expect(result.outcome).toBe('transcoded');
    const { offsets, fragments } = fragmentsOf(output!);
    expect(fragments).toHaveLength(frames);
    expect(offsets).toEqual(fragments.map((f) => f.offset));
    expect(offsets[0]).toBe(0);
  });

  it('refuses samples that are not low-aligned (High Bit above Bits Stored - 1)', async () => {
    const spec = mono16(12, Uint16Array.from(gradient(R * C, 12)));
    const file = syntheticImage(spec);
    // Patch High Bit (0028,0102) from 11 to 15 in place.
    const at = file.indexOf(Buffer.from([0x28, 0x00, 0x02, 0x01, 0x55, 0x53]));
    file.writeUInt16LE(15, at + 8);
    const { result } = await transcodeBuffer(file, target);
    expect(result.reason).toMatch(/High Bit 15 is not Bits Stored - 1/);
  });
});

describe.each(TARGETS)('colour, %s', (target) => {
  const rgb = (planar: number) => {
    const interleaved = Uint8Array.from(gradient(R * C * 3, 8, 7));
    if (planar === 0) return interleaved;
    const out = new Uint8Array(interleaved.length);
    for (let p = 0; p < R * C; p++) for (let c = 0; c < 3; c++) out[c * R * C + p] = interleaved[p * 3 + c]!;
    return out;
  };
  const spec = (planar: number): ImageSpec => ({ rows: R, columns: C, samplesPerPixel: 3, planar, bitsAllocated: 8, bitsStored: 8, pixels: rgb(planar) });

  it('encodes colour-by-plane RGB and sets Planar Configuration to 0', async () => {
    const byPlane = await transcodeBuffer(syntheticImage(spec(1)), target);
    const byPixel = await transcodeBuffer(syntheticImage(spec(0)), target);
    expect(byPlane.result.outcome).toBe('transcoded');
    expect(byPlane.result.pixelSha256).toBe(byPixel.result.pixelSha256);
    const { dataset, top } = fragmentsOf(byPlane.output!);
    expect(readUs(dataset, findElement(top, 0x00280006))).toBe(0);
  });

  it('refuses signed colour and chroma-subsampled colour', async () => {
    const signed = await transcodeBuffer(syntheticImage({ ...spec(0), signed: true }), target);
    expect(signed.result.reason).toMatch(/signed colour/);
    const sub = await transcodeBuffer(syntheticImage({ ...spec(0), photometric: 'YBR_FULL_422', pixels: rgb(0).subarray(0, R * C * 2) }), target);
    expect(sub.result.reason).toMatch(/YBR_FULL_422 pixel data is chroma-subsampled/);
  });

  it('labels the result as PS3.5 wants: RGB for JPEG-LS, YBR_RCT (reversible colour transform) for HTJ2K', async () => {
    const { output } = await transcodeBuffer(syntheticImage(spec(0)), target);
    const { dataset, top } = fragmentsOf(output!);
    expect(readString(dataset, findElement(top, 0x00280004))).toBe(target === 'htj2k' ? 'YBR_RCT' : 'RGB');
  });

  it(target === 'jpeg-ls' ? 'takes YBR_FULL as it is' : 'leaves YBR_FULL (no colour transform applies to it)', async () => {
    const { result } = await transcodeBuffer(syntheticImage({ ...spec(0), photometric: 'YBR_FULL' }), target);
    if (target === 'jpeg-ls') expect(result.outcome).toBe('transcoded');
    else expect(result.reason).toMatch(/YBR_FULL colour: HTJ2K here needs the reversible colour transform/);
  });
});

describe('codec-specific limits', () => {
  it('JPEG-LS takes signed 8-bit samples; HTJ2K leaves them (the openjph build clamps them)', async () => {
    const px = Uint8Array.from(gradient(R * C, 8), (v) => (v - 128) & 0xff);
    const file = syntheticImage({ rows: R, columns: C, bitsAllocated: 8, bitsStored: 8, signed: true, pixels: px });
    expect((await transcodeBuffer(file, 'jpeg-ls')).result.outcome).toBe('transcoded');
    expect((await transcodeBuffer(file, 'htj2k')).result.reason).toMatch(/signed samples of 8 bits or fewer/);
  });

  it('HTJ2K leaves 16-bit colour as received (the openjph encoder mishandles it); JPEG-LS takes it', async () => {
    const file = syntheticImage({ rows: R, columns: C, samplesPerPixel: 3, bitsAllocated: 16, bitsStored: 16, pixels: Uint16Array.from(gradient(R * C * 3, 16)) });
    expect((await transcodeBuffer(file, 'htj2k')).result.reason).toMatch(/colour samples above 8 bits/);
    expect((await transcodeBuffer(file, 'jpeg-ls')).result.outcome).toBe('transcoded');
  });

  it('JPEG-LS codes 8 stored bits in a 16-bit container at 8 bits and gives them back as 16-bit', async () => {
    const file = syntheticImage(mono16(8, Uint16Array.from(gradient(R * C, 8))));
    for (const target of TARGETS) expect((await transcodeBuffer(file, target)).result.outcome).toBe('transcoded');
  });
});

describe('Pixel Data longer than its frames', () => {
  const base = () => Uint16Array.from(gradient(R * C + 64, 12));
  it('drops zero padding after the last frame', async () => {
    const px = base();
    px.fill(0, R * C);
    const { result } = await transcodeBuffer(syntheticImage(mono16(12, px)), 'jpeg-ls');
    expect(result.outcome).toBe('transcoded');
  });

  it('leaves the object when the extra bytes hold anything', async () => {
    const { result } = await transcodeBuffer(syntheticImage(mono16(12, base())), 'jpeg-ls');
    expect(result.reason).toMatch(/Pixel Data has 128 non-padding bytes past its 1 frame\(s\)/);
  });
});
