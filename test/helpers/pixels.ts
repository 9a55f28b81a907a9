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
    return nativePixelData(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
