// DICOM RLE Lossless (PS3.5 Annex G) decoding: small enough to own, and it lets RLE objects be
// re-encoded with a stronger lossless codec instead of going as received.

/** One RLE frame to little endian samples, colour-by-pixel. A string is the reason it failed. */
export function decodeRleFrame(frame: Uint8Array, pixels: number, samplesPerPixel: number, bytesPerSample: number): Uint8Array | string {
  if (frame.length < 64) return `RLE frame of ${frame.length} bytes has no 64-byte header`;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  const expected = samplesPerPixel * bytesPerSample;
  if (segments !== expected) return `RLE frame has ${segments} segments, ${expected} expected`;
  const out = new Uint8Array(pixels * expected);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || start > end) return `RLE segment ${s} offsets ${start}..${end} are outside the frame`;
    // Segments run sample by sample, most significant byte first (G.2).
    const sample = Math.floor(s / bytesPerSample);
    const byte = bytesPerSample - 1 - (s % bytesPerSample);
    const got = unpack(frame, start, end, out, sample * bytesPerSample + byte, expected, pixels);
    if (got !== pixels) return `RLE segment ${s} decodes to ${got} bytes, ${pixels} expected`;
  }
  return out;
}

/** PackBits: writes every `stride`-th byte of `out` from `at`; returns the bytes produced. */
function unpack(src: Uint8Array, pos: number, end: number, out: Uint8Array, at: number, stride: number, limit: number): number {
  let n = 0;
  while (pos < end && n < limit) {
    const header = src[pos++]!;
    if (header < 128) {
      const count = header + 1;
      if (pos + count > end || n + count > limit) return -1;
      for (let i = 0; i < count; i++) out[at + (n++) * stride] = src[pos++]!;
    } else if (header > 128) {
      const count = 257 - header;
      if (pos >= end || n + count > limit) return -1;
      const value = src[pos++]!;
      for (let i = 0; i < count; i++) out[at + (n++) * stride] = value;
    }
    // 128 is a no-op.
  }
  return n;
}
