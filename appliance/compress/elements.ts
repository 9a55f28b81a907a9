// Element-level access to explicit VR little endian datasets: where each top-level element lies,
// its small values, the fragments of encapsulated pixel data, and writers for new elements. The
// transcoder copies every byte it does not need to change, so it only ever needs offsets.
import { elementBytes, itemHeader, LONG_VRS } from '../../shared/dicom/encode.ts';

export { elementBytes, LONG_VRS };

export const UNDEFINED = 0xffffffff;
export const ITEM = 0xfffee000;
export const ITEM_DELIM = 0xfffee00d;
export const SEQ_DELIM = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;

/** The dataset cannot be walked: the object goes as received, this message is the reason. */
export class DatasetError extends Error {
  constructor(message: string, offset: number) {
    super(`${message} at byte ${offset} of the dataset`);
    this.name = 'DatasetError';
  }
}

export const tagHex = (tag: number): string =>
  `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`;

export interface Element {
  tag: number;
  /** '' for the item and delimiter tags of implicit content. */
  vr: string;
  /** Offset of the tag. */
  start: number;
  valueStart: number;
  /** Offset just past the element (past the sequence delimiter for undefined lengths). */
  end: number;
  undefinedLength: boolean;
}

export interface TopLevel {
  elements: Element[];
  /** Where the elements end: the dataset length, or where trailing zero padding starts. */
  end: number;
}

const ZEROS = Buffer.alloc(64 * 1024);

/** Whether every byte of `buf` is zero (memcmp against a zero block: fast on megabytes of padding). */
export function allZero(buf: Buffer): boolean {
  for (let off = 0; off < buf.length; off += ZEROS.length) {
    const chunk = buf.subarray(off, off + ZEROS.length);
    if (!chunk.equals(ZEROS.subarray(0, chunk.length))) return false;
  }
  return true;
}

function need(buf: Buffer, off: number, n: number): void {
  if (off + n > buf.length) throw new DatasetError(`truncated: ${n} bytes needed, ${buf.length - off} left`, off);
}

function readTag(buf: Buffer, off: number): number {
  need(buf, off, 4);
  return ((buf.readUInt16LE(off) << 16) | buf.readUInt16LE(off + 2)) >>> 0;
}

/** Reads one element header; explicit selects explicit or implicit VR (both little endian). */
function header(buf: Buffer, off: number, explicit: boolean): { tag: number; vr: string; length: number; size: number } {
  const tag = readTag(buf, off);
  need(buf, off, 8);
  if (tag >>> 16 === 0xfffe || !explicit) return { tag, vr: '', length: buf.readUInt32LE(off + 4), size: 8 };
  const vr = buf.toString('latin1', off + 4, off + 6);
  if (!/^[A-Z]{2}$/.test(vr)) throw new DatasetError(`invalid VR bytes in ${tagHex(tag)}`, off);
  if (!LONG_VRS.has(vr)) return { tag, vr, length: buf.readUInt16LE(off + 6), size: 8 };
  need(buf, off, 12);
  return { tag, vr, length: buf.readUInt32LE(off + 8), size: 12 };
}

/**
 * Skips the items of an undefined-length sequence (or encapsulated pixel data) that starts at
 * `off`; returns the offset after its sequence delimiter. Items hold explicit or implicit content.
 */
function skipItems(buf: Buffer, off: number, explicit: boolean): number {
  for (;;) {
    const h = header(buf, off, false);
    off += 8;
    if (h.tag === SEQ_DELIM) return off;
    if (h.tag !== ITEM) throw new DatasetError(`expected an item, found ${tagHex(h.tag)}`, off - 8);
    if (h.length !== UNDEFINED) {
      need(buf, off, h.length);
      off += h.length;
      continue;
    }
    // An undefined-length item runs until its item delimiter.
    for (;;) {
      if (readTag(buf, off) === ITEM_DELIM) {
        off += 8;
        break;
      }
      off = skipElement(buf, off, explicit);
    }
  }
}

function skipElement(buf: Buffer, off: number, explicit: boolean): number {
  const h = header(buf, off, explicit);
  const valueStart = off + h.size;
  if (h.length !== UNDEFINED) {
    need(buf, valueStart, h.length);
    return valueStart + h.length;
  }
  // PS3.5 6.2.2: an undefined-length UN holds implicit VR little endian items.
  return skipItems(buf, valueStart, explicit && h.vr !== 'UN');
}

/** Walks the top level of an explicit VR little endian dataset. */
export function parseTopLevel(buf: Buffer): TopLevel {
  const elements: Element[] = [];
  let off = 0;
  while (off < buf.length) {
    // Some writers pad files with zeros after the last element (the ingest walker accepts that).
    if (buf.length - off >= 8 && buf.readUInt32LE(off) === 0 && buf.readUInt32LE(off + 4) === 0) {
      if (allZero(buf.subarray(off))) return { elements, end: off };
    }
    const h = header(buf, off, true);
    if (h.tag >>> 16 === 0xfffe) throw new DatasetError(`${tagHex(h.tag)} outside a sequence`, off);
    const end = skipElement(buf, off, true);
    const prev = elements[elements.length - 1];
    if (prev && prev.tag >= h.tag) throw new DatasetError(`${tagHex(h.tag)} out of order after ${tagHex(prev.tag)}`, off);
    elements.push({ tag: h.tag, vr: h.vr, start: off, valueStart: off + h.size, end, undefinedLength: h.length === UNDEFINED });
    off = end;
  }
  return { elements, end: off };
}

export function findElement(top: TopLevel, tag: number): Element | undefined {
  return top.elements.find((e) => e.tag === tag);
}

export function valueOf(buf: Buffer, el: Element): Buffer {
  return buf.subarray(el.valueStart, el.end);
}

/** First value of a US element, or undefined when absent or empty. */
export function readUs(buf: Buffer, el: Element | undefined): number | undefined {
  if (!el || el.end - el.valueStart < 2) return undefined;
  return buf.readUInt16LE(el.valueStart);
}

/** A string value without its padding (first value only when `first`). */
export function readString(buf: Buffer, el: Element | undefined, first = false): string | undefined {
  if (!el) return undefined;
  const text = buf.toString('latin1', el.valueStart, el.end).replace(/[\0 ]+$/, '').trim();
  return first ? (text.split('\\')[0] ?? '').trim() : text;
}

export interface Fragments {
  /** Basic Offset Table entries (empty when the table is empty). */
  offsets: number[];
  /** Fragment values, with the offset of each item relative to the first fragment item. */
  fragments: Array<{ offset: number; data: Buffer }>;
}

/** The Basic Offset Table and fragments of an encapsulated Pixel Data element. */
export function readFragments(buf: Buffer, el: Element): Fragments {
  if (!el.undefinedLength) throw new DatasetError('encapsulated Pixel Data has a defined length', el.start);
  let off = el.valueStart;
  const items: Array<{ offset: number; data: Buffer }> = [];
  let first = -1;
  for (;;) {
    const h = header(buf, off, false);
    if (h.tag === SEQ_DELIM) break;
    if (h.tag !== ITEM || h.length === UNDEFINED) throw new DatasetError(`bad fragment item ${tagHex(h.tag)} in Pixel Data`, off);
    need(buf, off + 8, h.length);
    if (items.length === 1) first = off;
    items.push({ offset: items.length === 0 ? 0 : off - first, data: buf.subarray(off + 8, off + 8 + h.length) });
    off += 8 + h.length;
  }
  const [bot, ...fragments] = items;
  if (!bot) throw new DatasetError('encapsulated Pixel Data has no Basic Offset Table item', el.valueStart);
  if (bot.data.length % 4 !== 0) throw new DatasetError(`Basic Offset Table of ${bot.data.length} bytes`, el.valueStart);
  const offsets: number[] = [];
  for (let i = 0; i < bot.data.length; i += 4) offsets.push(bot.data.readUInt32LE(i));
  return { offsets, fragments };
}


/**
 * Encapsulated Pixel Data (PS3.5 A.4): OB, undefined length, a filled Basic Offset Table, one
 * even-length fragment per frame, then the sequence delimiter. The table stays empty when the
 * offsets would not fit its 32-bit entries.
 */
export function encapsulatedPixelData(frames: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const f of frames) {
    offsets.push(offset);
    const padded = f.length + (f.length % 2);
    parts.push(itemHeader(ITEM, padded), Buffer.from(f.buffer, f.byteOffset, f.length));
    if (padded > f.length) parts.push(Buffer.alloc(1));
    offset += 8 + padded;
  }
  const fits = offset <= 0xffffffff;
  const bot = Buffer.alloc(fits ? 4 * offsets.length : 0);
  if (fits) offsets.forEach((o, i) => bot.writeUInt32LE(o, 4 * i));
  const head = Buffer.alloc(12);
  head.writeUInt16LE(0x7fe0, 0);
  head.writeUInt16LE(0x0010, 2);
  head.write('OB', 4, 'latin1');
  head.writeUInt32LE(UNDEFINED, 8);
  return Buffer.concat([head, itemHeader(ITEM, bot.length), bot, ...parts, itemHeader(SEQ_DELIM, 0)]);
}
