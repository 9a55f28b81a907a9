// Synthetic DICOM files for what real data cannot give cheaply: a 1 GB multi-frame object, or a
// fresh UID per crash-test round. Explicit VR little endian, written streaming.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { elementBytes as el, elementHeader } from '../../shared/dicom/encode.ts';
import { buildFileMeta } from '../../shared/dicom/header.ts';

export const newUid = (): string => `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;

const str = (s: string, pad = ' ') => Buffer.from(s.length % 2 ? s + pad : s, 'latin1');
const us = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
};

export interface SyntheticOptions {
  frames: number;
  rows?: number;
  columns?: number;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
}

/** Writes a multi-frame 16-bit grayscale object; returns its SOP Instance UID. */
export async function writeSyntheticDicom(path: string, opts: SyntheticOptions): Promise<string> {
  const rows = opts.rows ?? 512;
  const columns = opts.columns ?? 512;
  const sopClass = '1.2.840.10008.5.1.4.1.1.7.3'; // Multi-frame Grayscale Word Secondary Capture
  const sop = opts.sopInstanceUid ?? newUid();
  const ts = '1.2.840.10008.1.2.1';
  const frameBytes = rows * columns * 2;
  const header = Buffer.concat([
    el(0x00080016, 'UI', str(sopClass, '\0')),
    el(0x00080018, 'UI', str(sop, '\0')),
    el(0x00080060, 'CS', str('OT')),
    el(0x00100010, 'PN', str('SYNTHETIC^LARGE')),
    el(0x00100020, 'LO', str('SYN001')),
    el(0x0020000d, 'UI', str(opts.studyInstanceUid ?? newUid(), '\0')),
    el(0x0020000e, 'UI', str(opts.seriesInstanceUid ?? newUid(), '\0')),
    el(0x00200013, 'IS', str('1')),
    el(0x00280002, 'US', us(1)),
    el(0x00280004, 'CS', str('MONOCHROME2')),
    el(0x00280008, 'IS', str(String(opts.frames))),
    el(0x00280010, 'US', us(rows)),
    el(0x00280011, 'US', us(columns)),
    el(0x00280100, 'US', us(16)),
    el(0x00280101, 'US', us(16)),
    el(0x00280102, 'US', us(15)),
    el(0x00280103, 'US', us(0)),
  ]);
  const pixelHead = elementHeader(0x7fe00010, 'OW', frameBytes * opts.frames);

  const out = createWriteStream(path);
  out.write(buildFileMeta(sopClass, sop, ts));
  out.write(header);
  out.write(pixelHead);
  for (let f = 0; f < opts.frames; f++) {
    // A fresh buffer per frame: the stream may still hold the previous one.
    if (!out.write(Buffer.alloc(frameBytes, f & 0xff))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return sop;
}
