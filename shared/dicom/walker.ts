// A streaming, allocation-light walker over a DICOM dataset's element structure.
//
// Ingest feeds it every byte it writes to disk. It checks that the structure is whole (each
// length fits, every undefined-length sequence and item is closed, pixel data fragments are
// well formed) and collects a handful of top-level attributes, without ever holding more than
// one element header or one small value in memory. Values are skipped, not decoded.
import { LONG_VRS } from './encode.ts';

export class DicomStructureError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} (at byte ${offset} of the dataset)`);
    this.name = 'DicomStructureError';
    this.offset = offset;
  }
}

const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIM = 0xfffee00d;
const SEQ_DELIM = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;
const MAX_COLLECTED = 4096;

interface Frame {
  kind: 'seq' | 'item' | 'fragments';
  tag: number;
  /** Absolute end offset for defined lengths; undefined when closed by a delimiter. */
  end?: number;
  explicitVr: boolean;
}

export interface WalkerOptions {
  explicitVr: boolean;
  littleEndian: boolean;
  /** Top-level tags whose (small) values to keep, as (group << 16 | element). */
  collect?: ReadonlySet<number>;
}

export interface WalkResult {
  /** Raw bytes of each collected top-level value. */
  values: Map<number, Buffer>;
  /** Collected tags that arrived with VR UN in an explicit VR dataset. */
  unknownVr: number[];
  pixelDataOffset?: number;
  length: number;
}

export const tagString = (tag: number): string =>
  `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`;

export class DatasetWalker {
  private readonly le: boolean;
  private readonly explicitVr: boolean;
  private readonly collect: ReadonlySet<number>;
  private readonly values = new Map<number, Buffer>();
  private readonly unknownVr: number[] = [];
  private readonly stack: Frame[] = [];
  private carry: Buffer | null = null;
  /** Absolute offset of the next unread byte. */
  private pos = 0;
  private skip = 0;
  private skipping = 0; // tag being skipped, for error messages
  /** Set once zero padding after the last element starts (some writers pad files to a block size). */
  private padding = false;
  private pixelDataOffset: number | undefined;

  constructor(opts: WalkerOptions) {
    this.le = opts.littleEndian;
    this.explicitVr = opts.explicitVr;
    this.collect = opts.collect ?? new Set();
  }

  push(chunk: Buffer): void {
    let buf = chunk;
    let off = 0;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    while (off < buf.length) {
      if (this.padding) {
        const nonZero = buf.subarray(off).findIndex((b) => b !== 0);
        if (nonZero >= 0) throw new DicomStructureError('data after trailing zero padding', this.pos + nonZero);
        this.pos += buf.length - off;
        return;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - off);
        this.skip -= n;
        off += n;
        this.pos += n;
        continue;
      }
      this.closeDefinedFrames();
      const used = this.element(buf, off);
      if (used < 0) continue; // switched to padding mode
      if (used === 0) {
        this.carry = Buffer.from(buf.subarray(off));
        return;
      }
      off += used;
    }
  }

  end(): WalkResult {
    if (this.skip > 0) {
      throw new DicomStructureError(`truncated: value of ${tagString(this.skipping)} is missing ${this.skip} bytes`, this.pos);
    }
    if (this.carry && this.carry.length > 0) {
      throw new DicomStructureError(`truncated: ${this.carry.length} trailing bytes do not form a whole element`, this.pos);
    }
    this.closeDefinedFrames();
    const open = this.stack[this.stack.length - 1];
    if (open) {
      throw new DicomStructureError(`truncated: ${open.kind === 'item' ? 'item' : 'sequence'} in ${tagString(open.tag)} is not closed`, this.pos);
    }
    return { values: this.values, unknownVr: this.unknownVr, pixelDataOffset: this.pixelDataOffset, length: this.pos };
  }

  private closeDefinedFrames(): void {
    for (let top = this.stack[this.stack.length - 1]; top?.end !== undefined; top = this.stack[this.stack.length - 1]) {
      if (this.pos < top.end) return;
      if (this.pos > top.end) throw new DicomStructureError(`content overruns the declared length of ${tagString(top.tag)}`, this.pos);
      this.stack.pop();
    }
  }

  private u16(buf: Buffer, at: number): number {
    return this.le ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  private u32(buf: Buffer, at: number): number {
    return this.le ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  /**
   * Reads one element header (and a collected value) at `off`; returns bytes consumed, 0 if more
   * input is needed, -1 when the rest of the dataset is zero padding.
   */
  private element(buf: Buffer, off: number): number {
    const avail = buf.length - off;
    if (avail < 8) return 0;
    const start = this.pos;
    const tag = ((this.u16(buf, off) << 16) | this.u16(buf, off + 2)) >>> 0;
    const top = this.stack[this.stack.length - 1];
    if (!top && tag === 0 && buf.readUInt32LE(off + 4) === 0) {
      this.padding = true;
      return -1;
    }

    if (tag >>> 16 === 0xfffe) {
      const length = this.u32(buf, off + 4);
      this.pos += 8;
      this.delimiterOrItem(tag, length, top, start);
      return 8;
    }
    if (top && top.kind !== 'item') {
      throw new DicomStructureError(`expected an item in ${tagString(top.tag)}, found ${tagString(tag)}`, start);
    }

    const explicitVr = top ? top.explicitVr : this.explicitVr;
    let vr = '';
    let length: number;
    let header: number;
    if (explicitVr) {
      const c0 = buf[off + 4]!;
      const c1 = buf[off + 5]!;
      if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a) {
        throw new DicomStructureError(`invalid VR bytes 0x${c0.toString(16)} 0x${c1.toString(16)} in ${tagString(tag)}`, start);
      }
      vr = String.fromCharCode(c0, c1);
      if (LONG_VRS.has(vr)) {
        if (avail < 12) return 0;
        length = this.u32(buf, off + 8);
        header = 12;
      } else {
        length = this.u16(buf, off + 6);
        header = 8;
      }
    } else {
      length = this.u32(buf, off + 4);
      header = 8;
    }

    const group = tag >>> 16;
    // PS3.5 7.1: these groups shall not be used; a dataset with them was not made by a conforming writer.
    if (group === 0x0001 || group === 0x0003 || group === 0x0005 || group === 0x0007 || group === 0xffff) {
      throw new DicomStructureError(`element ${tagString(tag)} is in a group the standard forbids`, start);
    }
    const depth = this.stack.length;
    if (depth === 0 && tag === PIXEL_DATA) this.pixelDataOffset = start;
    if (depth === 0 && vr === 'UN' && this.collect.has(tag)) this.unknownVr.push(tag);

    if (length === UNDEFINED) {
      this.pos += header;
      if (tag === PIXEL_DATA && (vr === 'OB' || vr === 'OW' || vr === '')) {
        this.stack.push({ kind: 'fragments', tag, explicitVr });
      } else if (vr === 'SQ' || vr === '' ) {
        this.stack.push({ kind: 'seq', tag, explicitVr });
      } else if (vr === 'UN') {
        // PS3.5 6.2.2: an undefined-length UN is a sequence encoded implicit VR little endian.
        if (!this.le) throw new DicomStructureError(`undefined-length UN ${tagString(tag)} in a big endian dataset`, start);
        this.stack.push({ kind: 'seq', tag, explicitVr: false });
      } else {
        throw new DicomStructureError(`undefined length on ${tagString(tag)} with VR ${vr}`, start);
      }
      return header;
    }

    if (vr === 'SQ') {
      this.pos += header;
      if (length > 0) this.stack.push({ kind: 'seq', tag, end: this.pos + length, explicitVr });
      return header;
    }

    if (depth === 0 && this.collect.has(tag) && length <= MAX_COLLECTED) {
      if (avail < header + length) return 0;
      this.values.set(tag, Buffer.from(buf.subarray(off + header, off + header + length)));
      this.pos += header + length;
      return header + length;
    }

    this.pos += header;
    this.skip = length;
    this.skipping = tag;
    return header;
  }

  private delimiterOrItem(tag: number, length: number, top: Frame | undefined, start: number): void {
    if (tag === ITEM) {
      if (!top || top.kind === 'item') throw new DicomStructureError('item tag outside a sequence', start);
      if (top.kind === 'fragments') {
        if (length === UNDEFINED) throw new DicomStructureError('pixel data fragment with undefined length', start);
        this.skip = length;
        this.skipping = tag;
      } else if (length === UNDEFINED) {
        this.stack.push({ kind: 'item', tag: top.tag, explicitVr: top.explicitVr });
      } else if (length > 0) {
        this.stack.push({ kind: 'item', tag: top.tag, end: this.pos + length, explicitVr: top.explicitVr });
      }
      return;
    }
    if (tag === ITEM_DELIM) {
      if (!top || top.kind !== 'item' || top.end !== undefined) throw new DicomStructureError('item delimiter without an open item', start);
      this.stack.pop();
      return;
    }
    if (tag === SEQ_DELIM) {
      if (!top || top.kind === 'item' || top.end !== undefined) throw new DicomStructureError('sequence delimiter without an open sequence', start);
      this.stack.pop();
      return;
    }
    throw new DicomStructureError(`unknown delimiter tag ${tagString(tag)}`, start);
  }
}
