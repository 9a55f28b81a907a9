// The two WASM codecs behind a frame-level API on canonical samples. Each module is instantiated
// once per thread (worker) and reused; every encoder/decoder instance is deleted after use, since
// WASM heap memory is not garbage collected.
import { createRequire } from 'node:module';
import type { Samples } from './pixels.ts';

export interface Geometry {
  width: number;
  height: number;
  components: number;
  bitsAllocated: number;
  bitsStored: number;
  signed: boolean;
}

/** The codec refused or mangled a frame; the object goes as received with this reason. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

// Minimal shapes of the embind classes (the packages ship no type declarations).
interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
  isUsingColorTransform?: boolean;
}
interface Deletable {
  delete(): void;
}
interface JlsEncoder extends Deletable {
  getDecodedBuffer(fi: FrameInfo): Uint8Array;
  setNearLossless(near: number): void;
  setInterleaveMode(mode: number): void;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
}
interface JlsDecoder extends Deletable {
  getEncodedBuffer(size: number): Uint8Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  getInterleaveMode(): number;
  getNearLossless(): number;
  getDecodedBuffer(): Uint8Array;
}
interface HtEncoder extends Deletable {
  getDecodedBuffer(fi: FrameInfo): Uint8Array;
  setQuality(lossless: boolean, step: number): void;
  setDecompositions(n: number): void;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
}
interface HtDecoder extends Deletable {
  getEncodedBuffer(size: number): Uint8Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  getIsReversible(): boolean;
  getDecodedBuffer(): Uint8Array;
}
interface CharlsModule {
  JpegLSEncoder: new () => JlsEncoder;
  JpegLSDecoder: new () => JlsDecoder;
}
interface OpenJphModule {
  HTJ2KEncoder: new () => HtEncoder;
  HTJ2KDecoder: new () => HtDecoder;
}
type Factory<T> = (opts?: { print?: (s: string) => void; printErr?: (s: string) => void }) => Promise<T>;

export interface Codecs {
  charls: CharlsModule;
  openjph: OpenJphModule;
  /** openjph reports errors by printing them; the last line is kept for the reason. */
  lastOpenJphMessage: string;
}

let loading: Promise<Codecs> | undefined;

export function loadCodecs(): Promise<Codecs> {
  loading ??= (async () => {
    const require = createRequire(import.meta.url);
    const charlsFactory = require('@cornerstonejs/codec-charls/wasmjs') as Factory<CharlsModule>;
    const openjphFactory = require('@cornerstonejs/codec-openjph/wasmjs') as Factory<OpenJphModule>;
    const codecs: Codecs = { charls: undefined as unknown as CharlsModule, openjph: undefined as unknown as OpenJphModule, lastOpenJphMessage: '' };
    const keep = (s: string) => {
      codecs.lastOpenJphMessage = s;
    };
    [codecs.charls, codecs.openjph] = await Promise.all([charlsFactory(), openjphFactory({ print: keep, printErr: keep })]);
    return codecs;
  })();
  return loading;
}

function bytesOf(s: Samples): Uint8Array {
  return new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
}

/**
 * Copies decoded samples out of WASM memory into an aligned array of the frame's sample width.
 * The codecs hand out one byte per sample up to 8 bits of precision, whatever Bits Allocated says.
 */
function samplesFrom(view: Uint8Array, precision: number, g: Geometry): Samples {
  const copy = new Uint8Array(view);
  if (g.bitsAllocated === 8) return copy;
  return precision <= 8 ? Uint16Array.from(copy) : new Uint16Array(copy.buffer, 0, copy.length >> 1);
}

/** The codecs take one byte per sample up to 8 bits of precision (see samplesFrom). */
function packed(samples: Samples, precision: number): Uint8Array {
  return precision <= 8 && !(samples instanceof Uint8Array) ? Uint8Array.from(samples) : bytesOf(samples);
}

// CharLS throws C++ exceptions, which surface in JavaScript as bare numbers (pointers).
function describe(err: unknown): string {
  return typeof err === 'number' ? `WASM exception ${err}` : err instanceof Error ? err.message : String(err);
}

function expectShape(fi: FrameInfo, g: Geometry, what: string): void {
  if (fi.width !== g.width || fi.height !== g.height || fi.componentCount !== g.components) {
    throw new CodecError(`${what} is ${fi.width}x${fi.height}x${fi.componentCount}, the dataset says ${g.width}x${g.height}x${g.components}`);
  }
  if (fi.bitsPerSample < 1 || fi.bitsPerSample > g.bitsAllocated) throw new CodecError(`${what} has ${fi.bitsPerSample}-bit samples, the dataset allocates ${g.bitsAllocated}`);
}

/** JPEG-LS lossless (NEAR 0); colour line-interleaved, so it decodes colour-by-pixel. */
export function encodeJpegLs(c: Codecs, samples: Samples, g: Geometry): Uint8Array {
  const enc = new c.charls.JpegLSEncoder();
  try {
    // JPEG-LS has no signed samples: the Bits Stored bit pattern is coded (PS3.5 8.2.3).
    const fi = { width: g.width, height: g.height, bitsPerSample: Math.max(2, g.bitsStored), componentCount: g.components };
    enc.getDecodedBuffer(fi).set(packed(samples, fi.bitsPerSample));
    enc.setNearLossless(0);
    // Line interleave (as dcmcjpls does) codes a few percent smaller than sample interleave here;
    // both take and give colour-by-pixel buffers.
    enc.setInterleaveMode(g.components > 1 ? 1 : 0);
    enc.encode();
    return new Uint8Array(enc.getEncodedBuffer());
  } catch (err) {
    throw new CodecError(`JPEG-LS encoder failed: ${describe(err)}`);
  } finally {
    enc.delete();
  }
}

/** Decodes a JPEG-LS frame; `requireLossless` rejects a near-lossless stream (NEAR > 0). */
export function decodeJpegLs(c: Codecs, data: Uint8Array, g: Geometry, requireLossless = true): { samples: Samples; planar: boolean } {
  const dec = new c.charls.JpegLSDecoder();
  try {
    dec.getEncodedBuffer(data.length).set(data);
    try {
      dec.decode();
    } catch (err) {
      throw new CodecError(`JPEG-LS decoder failed: ${describe(err)}`);
    }
    const fi = dec.getFrameInfo();
    expectShape(fi, g, 'JPEG-LS frame');
    const near = dec.getNearLossless();
    if (requireLossless && near !== 0) throw new CodecError(`JPEG-LS frame is near-lossless (NEAR=${near})`);
    // Interleave mode 0 codes each component in its own scan: decoded colour-by-plane.
    return { samples: samplesFrom(dec.getDecodedBuffer(), fi.bitsPerSample, g), planar: g.components > 1 && dec.getInterleaveMode() === 0 };
  } finally {
    dec.delete();
  }
}

/** Fewer wavelet levels for tiny images: a level needs at least a 2-pixel side to halve. */
function decompositions(g: Geometry): number {
  return Math.max(0, Math.min(5, Math.floor(Math.log2(Math.min(g.width, g.height)))));
}

/**
 * HTJ2K lossless: reversible 5-3 wavelet, and for colour the reversible colour transform (the
 * caller labels the result YBR_RCT). Without the transform this openjph build runs its codestream
 * in planar mode yet feeds and reads lines pixel-interleaved: it writes components' lines into
 * the wrong places, and decodes its own output back symmetrically, so only an independent decoder
 * (OpenJPEG) notices. With the transform the line order is right.
 */
export function encodeHtj2k(c: Codecs, samples: Samples, g: Geometry): Uint8Array {
  const enc = new c.openjph.HTJ2KEncoder();
  try {
    const fi = { width: g.width, height: g.height, bitsPerSample: g.bitsStored, componentCount: g.components, isSigned: g.signed, isUsingColorTransform: g.components > 1 };
    let input = samples;
    if (g.signed && g.bitsStored < g.bitsAllocated) {
      // J2K codes signed samples as numbers: feed them sign-extended from Bits Stored.
      const shift = 32 - g.bitsStored;
      input = samples.slice();
      for (let i = 0; i < input.length; i++) input[i] = (input[i]! << shift) >> shift;
    }
    enc.getDecodedBuffer(fi).set(packed(input, fi.bitsPerSample));
    enc.setQuality(true, 0);
    enc.setDecompositions(decompositions(g));
    c.lastOpenJphMessage = '';
    enc.encode();
    const out = new Uint8Array(enc.getEncodedBuffer());
    if (out.length === 0) throw new CodecError(`HTJ2K encoder produced nothing${c.lastOpenJphMessage ? `: ${c.lastOpenJphMessage}` : ''}`);
    return out;
  } catch (err) {
    throw err instanceof CodecError ? err : new CodecError(`HTJ2K encoder failed: ${describe(err)} ${c.lastOpenJphMessage}`.trim());
  } finally {
    enc.delete();
  }
}

/** Decodes an HTJ2K frame; `requireLossless` rejects an irreversible (9-7) codestream. */
export function decodeHtj2k(c: Codecs, data: Uint8Array, g: Geometry, requireLossless = true): { samples: Samples; colorTransform: boolean } {
  const dec = new c.openjph.HTJ2KDecoder();
  try {
    dec.getEncodedBuffer(data.length).set(data);
    c.lastOpenJphMessage = '';
    try {
      dec.decode();
    } catch (err) {
      throw new CodecError(`HTJ2K decoder failed: ${describe(err)}`);
    }
    const fi = dec.getFrameInfo();
    // openjph reports a broken codestream by printing and leaving an empty frame.
    if (fi.width === 0) throw new CodecError(`HTJ2K decoder failed: ${c.lastOpenJphMessage || 'no image decoded'}`);
    expectShape(fi, g, 'HTJ2K frame');
    if (fi.componentCount > 1 && !fi.isUsingColorTransform) {
      throw new CodecError('HTJ2K colour codestream without a colour transform: the openjph build reads its lines out of order');
    }
    if (requireLossless && !dec.getIsReversible()) throw new CodecError('HTJ2K frame uses the irreversible (lossy) wavelet');
    return { samples: samplesFrom(dec.getDecodedBuffer(), fi.bitsPerSample, g), colorTransform: fi.isUsingColorTransform === true };
  } finally {
    dec.delete();
  }
}
