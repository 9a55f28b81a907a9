// Writing explicit VR little endian elements: the file meta group, transcoded datasets, test files.

/** VRs whose explicit encoding has a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
export const LONG_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** The header of an explicit VR little endian element whose value is `length` bytes. */
export function elementHeader(tag: number, vr: string, length: number): Buffer {
  const long = LONG_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(tag >>> 16, 0);
  head.writeUInt16LE(tag & 0xffff, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(length, 8);
  else head.writeUInt16LE(length, 6);
  return head;
}

/** A whole explicit VR little endian element; an odd value is padded as its VR requires. */
export function elementBytes(tag: number, vr: string, value: Buffer): Buffer {
  const pad = value.length % 2 === 1 ? Buffer.from([['UI', 'OB', 'UN'].includes(vr) ? 0 : 0x20]) : undefined;
  const length = value.length + (pad ? 1 : 0);
  if (!LONG_VRS.has(vr) && length > 0xffff) {
    throw new RangeError(`(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')}) value of ${length} bytes does not fit VR ${vr}`);
  }
  const head = elementHeader(tag, vr, length);
  return Buffer.concat(pad ? [head, value, pad] : [head, value]);
}

/** An item or delimiter tag (group FFFE): the tag and a 4-byte length, no VR in any syntax. */
export function itemHeader(tag: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(tag >>> 16, 0);
  b.writeUInt16LE(tag & 0xffff, 2);
  b.writeUInt32LE(length, 4);
  return b;
}
