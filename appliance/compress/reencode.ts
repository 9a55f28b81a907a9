// Re-encodes an implicit VR little endian or explicit VR big endian dataset as explicit VR little
// endian, element by element: values keep their bytes (byte-swapped per VR for big endian),
// defined and undefined lengths stay as they were, implicit VRs come from the data dictionary.
// The top-level Pixel Data value is copied unswapped: its swap depends on Bits Allocated, which
// the caller knows (see pixels.ts).
import { createRequire } from 'node:module';
import { elementHeader as head, itemHeader as delimiter } from '../../shared/dicom/encode.ts';
import { allZero, DatasetError, ITEM, ITEM_DELIM, LONG_VRS, PIXEL_DATA, SEQ_DELIM, tagHex, UNDEFINED } from './elements.ts';

interface DcmjsDictionary {
  data: { DicomMetaDictionary: { dictionary: Record<string, { vr: string } | undefined> } };
}
// dcmjs ships no type declarations, hence require and this minimal shape. Its dictionary is a
// Proxy keyed "(GGGG,EEEE)" that also resolves repeating groups such as (60xx,3000).
const DICTIONARY = (createRequire(import.meta.url)('dcmjs') as DcmjsDictionary).data.DicomMetaDictionary.dictionary;

const SWAP: Record<string, number> = { US: 2, SS: 2, OW: 2, AT: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };
/** US-or-SS attributes whose signedness follows Pixel Representation (PS3.3 C.7.6.3). */
const PIXEL_VALUE_TAGS = new Set([0x00280104, 0x00280105, 0x00280106, 0x00280107, 0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121]);

export interface SourceEncoding {
  explicitVr: boolean;
  littleEndian: boolean;
}

export interface Reencoded {
  dataset: Buffer;
  /** The top-level Pixel Data value still has the source's byte order. */
  pixelDataBigEndian: boolean;
  /** VR of the top-level Pixel Data in the source (OB or OW; OW for implicit). */
  pixelDataVr?: string;
}

interface Ctx {
  src: Buffer;
  le: boolean;
  explicit: boolean;
  pixelRepresentation: number;
  pixelDataVr?: string;
}

// The dictionary Proxy builds a key string and scans per lookup: remember what it said per tag.
const dictionaryVr = new Map<number, string>();

/** VR of an implicit VR element: dictionary, else the PS3.5 7.8 private-creator rule, else UN. */
function implicitVr(tag: number, ctx: Ctx): string {
  const group = tag >>> 16;
  const elem = tag & 0xffff;
  if (elem === 0) return 'UL';
  if (group % 2 === 1) return elem >= 0x10 && elem <= 0xff ? 'LO' : 'UN';
  let vr = dictionaryVr.get(tag);
  if (vr === undefined) {
    const key = `(${group.toString(16).padStart(4, '0')},${elem.toString(16).padStart(4, '0')})`.toUpperCase();
    vr = DICTIONARY[key]?.vr ?? '';
    dictionaryVr.set(tag, vr);
  }
  if (vr === '') return 'UN';
  if (vr === 'xs') return PIXEL_VALUE_TAGS.has(tag) && ctx.pixelRepresentation === 1 ? 'SS' : 'US';
  // 'ox' (OB or OW) and 'lt' (US or OW: LUT Data): the bytes of an implicit little endian value are words.
  if (vr === 'ox' || vr === 'lt') return 'OW';
  return /^[A-Z]{2}$/.test(vr) ? vr : 'UN';
}

function u16(ctx: Ctx, off: number): number {
  if (off + 2 > ctx.src.length) throw new DatasetError('truncated element', off);
  return ctx.le ? ctx.src.readUInt16LE(off) : ctx.src.readUInt16BE(off);
}
function u32(ctx: Ctx, off: number): number {
  if (off + 4 > ctx.src.length) throw new DatasetError('truncated element', off);
  return ctx.le ? ctx.src.readUInt32LE(off) : ctx.src.readUInt32BE(off);
}
const tagAt = (ctx: Ctx, off: number): number => ((u16(ctx, off) << 16) | u16(ctx, off + 2)) >>> 0;


const total = (parts: Buffer[]): number => parts.reduce((n, p) => n + p.length, 0);

/**
 * Converts elements from `off` until `end` (defined length) or until a delimiter (undefined
 * length, returned without consuming it). Returns the offset reached.
 */
function convertElements(ctx: Ctx, off: number, end: number | undefined, depth: number, out: Buffer[]): number {
  while (end === undefined || off < end) {
    const tag = tagAt(ctx, off);
    // Trailing zero padding after the last element is not part of the dataset (see parseTopLevel).
    if (depth === 0 && tag === 0 && allZero(ctx.src.subarray(off))) return ctx.src.length;
    if (tag === ITEM_DELIM || tag === SEQ_DELIM) {
      if (end !== undefined) throw new DatasetError(`${tagHex(tag)} inside a defined-length item`, off);
      return off;
    }
    if (tag >>> 16 === 0xfffe) throw new DatasetError(`${tagHex(tag)} where an element was expected`, off);
    let vr: string;
    let length: number;
    let valueStart: number;
    if (ctx.explicit) {
      vr = ctx.src.toString('latin1', off + 4, off + 6);
      if (!/^[A-Z]{2}$/.test(vr)) throw new DatasetError(`invalid VR bytes in ${tagHex(tag)}`, off);
      const long = LONG_VRS.has(vr);
      length = long ? u32(ctx, off + 8) : u16(ctx, off + 6);
      valueStart = off + (long ? 12 : 8);
    } else {
      vr = implicitVr(tag, ctx);
      length = u32(ctx, off + 4);
      valueStart = off + 8;
    }
    if (length === UNDEFINED || vr === 'SQ') {
      // Native datasets hold no encapsulated data: an undefined length is a sequence, and an
      // implicit element of unknown VR with one (a private sequence) becomes SQ.
      if (vr !== 'SQ' && (ctx.explicit || vr !== 'UN')) throw new DatasetError(`undefined length on ${tagHex(tag)} with VR ${vr}`, off);
      off = convertSequence(ctx, tag, valueStart, length, depth, out);
      continue;
    }
    if (valueStart + length > ctx.src.length) throw new DatasetError(`value of ${tagHex(tag)} runs past the end`, off);
    let value = ctx.src.subarray(valueStart, valueStart + length);
    const topPixels = depth === 0 && tag === PIXEL_DATA;
    if (topPixels) ctx.pixelDataVr = vr;
    if (!ctx.le && !topPixels) {
      if (vr === 'UN') throw new DatasetError(`${tagHex(tag)} has VR UN in a big endian dataset: its byte order is unknown`, off);
      const unit = SWAP[vr];
      if (unit) {
        if (length % unit !== 0) throw new DatasetError(`${tagHex(tag)} ${vr} length ${length} is not a multiple of ${unit}`, off);
        value = Buffer.from(value);
        if (unit === 2) value.swap16();
        else if (unit === 4) value.swap32();
        else value.swap64();
      }
    }
    if (depth === 0 && tag === 0x00280103 && length >= 2) ctx.pixelRepresentation = value.readUInt16LE(0);
    // An implicit value too long for its VR's 2-byte length keeps its bytes as UN.
    const outVr = !LONG_VRS.has(vr) && length > 0xffff ? 'UN' : vr;
    out.push(head(tag, outVr, length), value);
    off = valueStart + length;
  }
  return off;
}

/** A sequence (or an implicit undefined-length element, which can only be one) and its items. */
function convertSequence(ctx: Ctx, tag: number, off: number, length: number, depth: number, out: Buffer[]): number {
  const items: Buffer[] = [];
  const end = length === UNDEFINED ? undefined : off + length;
  if (end !== undefined && end > ctx.src.length) throw new DatasetError(`sequence ${tagHex(tag)} runs past the end`, off);
  while (end === undefined || off < end) {
    const itemTag = tagAt(ctx, off);
    const itemLength = u32(ctx, off + 4);
    off += 8;
    if (itemTag === SEQ_DELIM) {
      if (end !== undefined) throw new DatasetError(`sequence delimiter in defined-length ${tagHex(tag)}`, off - 8);
      break;
    }
    if (itemTag !== ITEM) throw new DatasetError(`expected an item in ${tagHex(tag)}, found ${tagHex(itemTag)}`, off - 8);
    const content: Buffer[] = [];
    if (itemLength === UNDEFINED) {
      off = convertElements(ctx, off, undefined, depth + 1, content);
      if (tagAt(ctx, off) !== ITEM_DELIM) throw new DatasetError(`item in ${tagHex(tag)} is not closed`, off);
      off += 8;
    } else {
      off = convertElements(ctx, off, off + itemLength, depth + 1, content);
    }
    items.push(delimiter(ITEM, total(content)), ...content);
  }
  // A re-encoded dataset keeps none of its bytes anyway: sequences and items get defined lengths,
  // as dcmtk writes them, 8 bytes smaller per delimiter than undefined ones.
  out.push(head(tag, 'SQ', total(items)), ...items);
  return end ?? off;
}

/** Re-encodes `src` (a whole dataset, no file meta) as explicit VR little endian. */
export function toExplicitLittle(src: Buffer, enc: SourceEncoding): Reencoded {
  const ctx: Ctx = { src, le: enc.littleEndian, explicit: enc.explicitVr, pixelRepresentation: 0 };
  const out: Buffer[] = [];
  convertElements(ctx, 0, src.length, 0, out);
  return { dataset: Buffer.concat(out), pixelDataBigEndian: !enc.littleEndian, pixelDataVr: ctx.pixelDataVr };
}
