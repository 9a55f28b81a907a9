// Assembles the transcoded Part 10 file: a rewritten file meta group, then the dataset's own bytes
// with only the patched top-level elements replaced.
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../shared/dicom/syntax.ts';
import { elementBytes, LONG_VRS, type TopLevel } from './elements.ts';

const uid = (s: string): Buffer => Buffer.from(s.length % 2 ? s + '\0' : s, 'latin1');

/**
 * The source's file meta elements with the new Transfer Syntax UID, m-box as the implementation
 * that wrote the file (PS3.10 7.1), and a recomputed group length. The preamble is zeroed: a
 * dual-format (e.g. TIFF) preamble would point at offsets that no longer hold what it describes.
 */
export function rebuildMeta(file: Buffer, datasetOffset: number, transferSyntaxUid: string): Buffer {
  const elements = new Map<number, Buffer>();
  let off = 132;
  while (off < datasetOffset) {
    const elem = file.readUInt16LE(off + 2);
    const vr = file.toString('latin1', off + 4, off + 6);
    const size = LONG_VRS.has(vr) ? 12 + file.readUInt32LE(off + 8) : 8 + file.readUInt16LE(off + 6);
    elements.set(elem, file.subarray(off, off + size));
    off += size;
  }
  elements.set(0x0010, elementBytes(0x00020010, 'UI', uid(transferSyntaxUid)));
  elements.set(0x0012, elementBytes(0x00020012, 'UI', uid(IMPLEMENTATION_CLASS_UID)));
  elements.set(0x0013, elementBytes(0x00020013, 'SH', Buffer.from(IMPLEMENTATION_VERSION_NAME, 'latin1')));
  elements.delete(0x0000);
  const body = [...elements.entries()].sort((a, b) => a[0] - b[0]).map(([, bytes]) => bytes);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.reduce((n, b) => n + b.length, 0), 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, elementBytes(0x00020000, 'UL', length), ...body]);
}

/**
 * The dataset with `patches` applied to its top-level elements: a Buffer replaces (or inserts, in
 * tag order) the whole element, null removes it. Bytes between patches are copied untouched;
 * trailing zero padding (past `top.end`) is dropped.
 */
export function patchDataset(dataset: Buffer, top: TopLevel, patches: ReadonlyMap<number, Buffer | null>): Buffer[] {
  const out: Buffer[] = [];
  const pending = [...patches.entries()].sort((a, b) => a[0] - b[0]);
  const put = (bytes: Buffer | null) => bytes && out.push(bytes);
  let copyFrom = 0;
  for (const el of top.elements) {
    while (pending.length > 0 && pending[0]![0] < el.tag) {
      out.push(dataset.subarray(copyFrom, el.start));
      put(pending.shift()![1]);
      copyFrom = el.start;
    }
    if (pending[0]?.[0] === el.tag) {
      out.push(dataset.subarray(copyFrom, el.start));
      put(pending.shift()![1]);
      copyFrom = el.end;
    }
  }
  out.push(dataset.subarray(copyFrom, top.end));
  for (const [, bytes] of pending) put(bytes);
  return out.filter((b) => b.length > 0);
}

/** A US element with one value. */
export function usElement(tag: number, value: number): Buffer {
  const v = Buffer.alloc(2);
  v.writeUInt16LE(value, 0);
  return elementBytes(tag, 'US', v);
}

/** Native Pixel Data with the given VR (OB or OW), padded to even length. */
export function nativePixelData(value: Uint8Array, vr: string): Buffer {
  return elementBytes(0x7fe00010, vr, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
}
