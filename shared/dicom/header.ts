// Turns a walked dataset into the indexed header, and reads/writes the Part 10 file meta group.
import type { DicomHeader } from '../types/store.ts';
import { elementBytes } from './encode.ts';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './syntax.ts';
import { DicomStructureError, tagString, type WalkResult } from './walker.ts';

type Kind = 'str' | 'int' | 'us';
const FIELDS: ReadonlyArray<[number, keyof DicomHeader | 'charset', Kind]> = [
  [0x00080005, 'charset', 'str'],
  [0x00080008, 'imageType', 'str'],
  [0x00080016, 'sopClassUid', 'str'],
  [0x00080018, 'sopInstanceUid', 'str'],
  [0x00080020, 'studyDate', 'str'],
  [0x00080030, 'studyTime', 'str'],
  [0x00080050, 'accessionNumber', 'str'],
  [0x00080060, 'modality', 'str'],
  [0x00080070, 'manufacturer', 'str'],
  [0x00081030, 'studyDescription', 'str'],
  [0x0008103e, 'seriesDescription', 'str'],
  [0x00100010, 'patientName', 'str'],
  [0x00100020, 'patientId', 'str'],
  [0x00100030, 'patientBirthDate', 'str'],
  [0x00100040, 'patientSex', 'str'],
  [0x00180015, 'bodyPartExamined', 'str'],
  [0x0020000d, 'studyInstanceUid', 'str'],
  [0x0020000e, 'seriesInstanceUid', 'str'],
  [0x00200011, 'seriesNumber', 'int'],
  [0x00200013, 'instanceNumber', 'int'],
  [0x00280008, 'numberOfFrames', 'int'],
  [0x00280010, 'rows', 'us'],
  [0x00280011, 'columns', 'us'],
  [0x00280100, 'bitsAllocated', 'us'],
];

/** Tags the walker must collect for `headerFromWalk`. */
export const HEADER_TAGS: ReadonlySet<number> = new Set(FIELDS.map(([tag]) => tag));

const REQUIRED: ReadonlyArray<keyof DicomHeader> = ['sopClassUid', 'sopInstanceUid', 'studyInstanceUid', 'seriesInstanceUid'];
const UID = /^[0-9]+(\.[0-9]+)*$/;

export class DicomHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DicomHeaderError';
  }
}

export function headerFromWalk(walk: WalkResult, transferSyntaxUid: string, littleEndian: boolean): DicomHeader {
  const un = walk.unknownVr[0];
  if (un !== undefined) throw new DicomHeaderError(`standard attribute ${tagString(un)} is encoded with VR UN`);
  const charsetRaw = walk.values.get(0x00080005);
  const utf8 = charsetRaw ? charsetRaw.toString('latin1').includes('ISO_IR 192') : false;
  const out: Record<string, string | number> = { transferSyntaxUid };
  for (const [tag, name, kind] of FIELDS) {
    const raw = walk.values.get(tag);
    if (!raw || raw.length === 0 || name === 'charset') continue;
    if (kind === 'us') {
      if (raw.length !== 2) throw new DicomHeaderError(`${name} ${tagString(tag)} has ${raw.length} bytes, US needs 2`);
      out[name] = littleEndian ? raw.readUInt16LE(0) : raw.readUInt16BE(0);
      continue;
    }
    const text = raw.toString(utf8 ? 'utf8' : 'latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
    if (text === '') continue;
    if (kind === 'int') {
      // Only the first value of a multi-valued IS is indexed.
      const first = text.split('\\')[0]!.trim();
      if (!/^[+-]?[0-9]{1,12}$/.test(first)) throw new DicomHeaderError(`invalid IS value "${first}" in ${name} ${tagString(tag)}`);
      out[name] = Number.parseInt(first, 10);
    } else {
      out[name] = text;
    }
  }
  for (const key of REQUIRED) {
    const value = out[key];
    if (typeof value !== 'string') throw new DicomHeaderError(`missing ${key}`);
    if (value.length > 64 || !UID.test(value)) throw new DicomHeaderError(`${key} '${value}' is not a valid UID`);
  }
  if (walk.pixelDataOffset !== undefined) out.pixelDataOffset = walk.pixelDataOffset;
  return out as unknown as DicomHeader;
}

const REQUIRED_META: ReadonlyArray<[number, string]> = [
  [0x00020000, 'FileMetaInformationGroupLength'],
  [0x00020002, 'MediaStorageSOPClassUID'],
  [0x00020003, 'MediaStorageSOPInstanceUID'],
  [0x00020010, 'TransferSyntaxUID'],
];

export interface FileMeta {
  transferSyntaxUid: string;
  mediaSopClassUid: string;
  mediaSopInstanceUid: string;
  /** Offset of the first dataset byte in the file. */
  datasetOffset: number;
}

/**
 * Parses the preamble and file meta group of a Part 10 file from its first bytes. Throws
 * DicomStructureError if `head` is not a Part 10 file or the meta group does not fit in it.
 */
export function parseFileMeta(head: Buffer): FileMeta {
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') {
    throw new DicomStructureError('not a DICOM Part 10 file (no DICM prefix at byte 128)', 0);
  }
  let off = 132;
  const values = new Map<number, string>();
  while (off + 8 <= head.length) {
    const group = head.readUInt16LE(off);
    if (group !== 0x0002) break;
    const tag = ((group << 16) | head.readUInt16LE(off + 2)) >>> 0;
    const vr = head.toString('latin1', off + 4, off + 6);
    let length: number;
    let hdr: number;
    if (['OB', 'OW', 'UN', 'SQ', 'UT', 'UC', 'UR'].includes(vr)) {
      if (off + 12 > head.length) break;
      length = head.readUInt32LE(off + 8);
      hdr = 12;
    } else {
      length = head.readUInt16LE(off + 6);
      hdr = 8;
    }
    if (length === 0xffffffff || off + hdr + length > head.length) {
      throw new DicomStructureError(`file meta element ${tag.toString(16)} does not fit`, off);
    }
    values.set(tag, vr === 'UI' ? head.toString('latin1', off + hdr, off + hdr + length).replace(/[\0 ]+$/, '') : '');
    off += hdr + length;
  }
  // PS3.10 7.1: Type 1 elements of the file meta. The box keeps files byte-exact, so a file it
  // accepts must already be a valid Part 10 file.
  const missing = REQUIRED_META.filter(([tag]) => !values.get(tag) && !(tag === 0x00020000 && values.has(tag)));
  if (missing.length > 0) {
    throw new DicomStructureError(`file meta lacks ${missing.map(([tag, name]) => `${tagString(tag)} ${name}`).join(', ')}`, off);
  }
  return {
    transferSyntaxUid: values.get(0x00020010)!,
    mediaSopClassUid: values.get(0x00020002)!,
    mediaSopInstanceUid: values.get(0x00020003)!,
    datasetOffset: off,
  };
}

/**
 * Preamble and file meta group for a dataset received over the network. Deliberately holds
 * nothing about the sender, so identical datasets give identical files.
 */
export function buildFileMeta(sopClassUid: string, sopInstanceUid: string, transferSyntaxUid: string): Buffer {
  const text = (s: string) => Buffer.from(s, 'latin1');
  const body = Buffer.concat([
    elementBytes(0x00020001, 'OB', Buffer.from([0x00, 0x01])),
    elementBytes(0x00020002, 'UI', text(sopClassUid)),
    elementBytes(0x00020003, 'UI', text(sopInstanceUid)),
    elementBytes(0x00020010, 'UI', text(transferSyntaxUid)),
    elementBytes(0x00020012, 'UI', text(IMPLEMENTATION_CLASS_UID)),
    elementBytes(0x00020013, 'SH', text(IMPLEMENTATION_VERSION_NAME)),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(body.length, 0);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, elementBytes(0x00020000, 'UL', groupLength), body]);
}
