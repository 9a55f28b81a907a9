// The native pixel bytes of a Part 10 file, for comparing what a peer holds with what was sent.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import { DatasetWalker } from '../../shared/dicom/walker.ts';

/** Pixel Data value of an explicit VR little endian (native) file. */
export function nativePixelData(file: string): Buffer {
  const bytes = readFileSync(file);
  const meta = parseFileMeta(bytes);
  if (meta.transferSyntaxUid !== '1.2.840.10008.1.2.1') throw new Error(`${file} is ${meta.transferSyntaxUid}, not explicit VR little endian`);
  const dataset = bytes.subarray(meta.datasetOffset);
  const walker = new DatasetWalker({ explicitVr: true, littleEndian: true });
  walker.push(dataset);
  const at = walker.end().pixelDataOffset;
  if (at === undefined) throw new Error(`${file} has no pixel data`);
  const length = dataset.readUInt32LE(at + 8);
  return dataset.subarray(at + 12, at + 12 + length);
}

/** Decodes any file dcmtk can decode (JPEG-LS, JPEG, RLE, native) to explicit LE and returns its pixels. */
export function decodedPixels(file: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'mbox-pixels-'));
  try {
    const out = join(dir, 'native.dcm');
    const ts = parseFileMeta(readFileSync(file)).transferSyntaxUid;
    const tool = ts.startsWith('1.2.840.10008.1.2.4.8') ? 'dcmdjpls' : ts === '1.2.840.10008.1.2.5' ? 'dcmdrle' : ts.startsWith('1.2.840.10008.1.2.4.') ? 'dcmdjpeg' : 'dcmconv';
    // -q: dcmtk warns once per odd element; some real files have hundreds of thousands.
    execFileSync(tool, ['-q', '+te', file, out], { stdio: 'ignore' });
    return colorByPixel(out, nativePixelData(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Colour pixels in one canonical order (R G B R G B …): a lossless encoder may rightly store a
 * colour-by-plane source colour-by-pixel, and the comparison is about the image, not the layout.
 */
function colorByPixel(file: string, pixels: Buffer): Buffer {
  const dump = execFileSync('dcmdump', ['-q', '+P', '0028,0002', '+P', '0028,0006', '+P', '0028,0010', '+P', '0028,0011', '+P', '0028,0100', '+P', '0028,0008', file], { encoding: 'utf8' });
  const value = (tag: string) => {
    const m = new RegExp(`^\\(${tag}\\) \\w\\w \\[?([^\\]\\s]+)`, 'm').exec(dump);
    return m ? Number(m[1]) : undefined;
  };
  const samples = value('0028,0002') ?? 1;
  if (samples === 1 || value('0028,0006') !== 1) return pixels;
  const rows = value('0028,0010') ?? 0;
  const cols = value('0028,0011') ?? 0;
  const bytes = (value('0028,0100') ?? 8) / 8;
  const frames = value('0028,0008') ?? 1;
  const plane = rows * cols * bytes;
  const out = Buffer.alloc(pixels.length);
  for (let f = 0; f < frames; f++) {
    const base = f * plane * samples;
    for (let i = 0; i < rows * cols; i++) {
      for (let s = 0; s < samples; s++) {
        pixels.copy(out, base + (i * samples + s) * bytes, base + s * plane + i * bytes, base + s * plane + (i + 1) * bytes);
      }
    }
  }
  return out;
}
