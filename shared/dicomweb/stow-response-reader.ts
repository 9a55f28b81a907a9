// Reads the Store Instances Response Module (PS3.18 §10.5.3, Annex I) out of a STOW-RS response
// body, in either encoding a receiver may answer with: DICOM JSON (PS3.18 Annex F) or the Native
// DICOM Model XML (PS3.19 Annex A). Only what decides an instance's fate is kept. (The fleet
// receiver's writer for the same module lives beside this file, in stow-response.ts.)
import { XMLParser } from 'fast-xml-parser';

const TAG = {
  FailureReason: '00081197',
  FailedSOPSequence: '00081198',
  ReferencedSOPSequence: '00081199',
  WarningReason: '00081196',
  ReferencedSOPClassUID: '00081150',
  ReferencedSOPInstanceUID: '00081155',
} as const;

// The fleet receiver puts a free-text reason into each item as a private element: creator
// (0009,0010) "MBOX STOW 1" reserving block (0009,10xx), text in (0009,1001).
const DETAIL_CREATOR_TAG = '00090010';
const DETAIL_TAG = '00091001';
const DETAIL_CREATOR = 'MBOX STOW 1';

export interface StowResponseItem {
  /** Missing on a failed item for a part the receiver could not read as DICOM at all. */
  sopInstanceUid?: string;
  sopClassUid?: string;
  /** FailureReason (0008,1197) on failed items, WarningReason (0008,1196) on referenced ones. */
  reason?: number;
  /** The receiver's own words, where it sent them (m-box fleet receiver). */
  text?: string;
}

export interface ParsedStowResponse {
  /** Only items with an instance UID: a confirmation that names nothing confirms nothing. */
  referenced: Array<StowResponseItem & { sopInstanceUid: string }>;
  failed: StowResponseItem[];
}

export type BodyFormat = 'json' | 'xml';

/**
 * Picks the encoding from the Content-Type, falling back to the first byte: Orthanc's DICOMweb
 * plugin 1.7 sends its 400 and 409 answers with no Content-Type at all.
 */
export function bodyFormat(contentType: string | undefined, body: string): BodyFormat | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type.endsWith('+json') || type === 'application/json') return 'json';
  if (type.endsWith('+xml') || type === 'application/xml' || type === 'text/xml') return 'xml';
  const first = body.trimStart()[0];
  if (first === '{' || first === '[') return 'json';
  if (first === '<') return 'xml';
  return undefined;
}

/** Parses a response body; throws (with a reason) when it is not a Store Instances Response. */
export function parseStowResponse(body: string, format: BodyFormat): ParsedStowResponse {
  const items = format === 'json' ? jsonSequences(body) : xmlSequences(body);
  return {
    referenced: items.referenced.filter((i): i is StowResponseItem & { sopInstanceUid: string } => i.sopInstanceUid !== undefined),
    failed: items.failed.filter((i) => i.sopInstanceUid !== undefined || i.reason !== undefined),
  };
}

/** One item's attributes, whatever the encoding: tag → first value, as text or number. */
type Flat = Map<string, unknown>;

function toItem(attrs: Flat, reasonTag: string): StowResponseItem {
  const uid = text(attrs.get(TAG.ReferencedSOPInstanceUID));
  const cls = text(attrs.get(TAG.ReferencedSOPClassUID));
  const reason = toCode(attrs.get(reasonTag));
  const note = text(attrs.get(DETAIL_CREATOR_TAG)) === DETAIL_CREATOR ? text(attrs.get(DETAIL_TAG)) : undefined;
  return { ...(uid ? { sopInstanceUid: uid } : {}), ...(cls ? { sopClassUid: cls } : {}), ...(reason !== undefined ? { reason } : {}), ...(note ? { text: note } : {}) };
}

// --- DICOM JSON -------------------------------------------------------------------------------

function jsonSequences(body: string): { referenced: StowResponseItem[]; failed: StowResponseItem[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    throw new Error(`STOW response is not valid JSON: ${(err as Error).message}`);
  }
  // The standard answers one dataset; some receivers wrap it in an array as QIDO does.
  const datasets = Array.isArray(doc) ? doc : [doc];
  const out = { referenced: [] as StowResponseItem[], failed: [] as StowResponseItem[] };
  for (const ds of datasets) {
    if (!isObject(ds)) throw new Error('STOW response JSON is not a DICOM JSON dataset');
    out.referenced.push(...jsonItems(ds, TAG.ReferencedSOPSequence).map((i) => toItem(i, TAG.WarningReason)));
    out.failed.push(...jsonItems(ds, TAG.FailedSOPSequence).map((i) => toItem(i, TAG.FailureReason)));
  }
  return out;
}

function jsonItems(ds: Record<string, unknown>, sequence: string): Flat[] {
  const seq = ds[sequence];
  const items = isObject(seq) && Array.isArray(seq['Value']) ? seq['Value'] : [];
  return items.filter(isObject).map((item) => {
    const flat: Flat = new Map();
    for (const [tag, el] of Object.entries(item)) {
      if (isObject(el) && Array.isArray(el['Value'])) flat.set(tag, el['Value'][0]);
    }
    return flat;
  });
}

// --- Native DICOM Model XML ---------------------------------------------------------------------

interface XmlAttribute {
  '@_tag'?: string;
  Value?: unknown[];
  Item?: unknown[];
}

const xml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Receivers may prefix the PS3.19 namespace; the element names are what matter.
  removeNSPrefix: true,
  // UIDs such as "1.20" must stay strings; codes are converted explicitly.
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === 'DicomAttribute' || name === 'Item' || name === 'Value',
});

function xmlSequences(body: string): { referenced: StowResponseItem[]; failed: StowResponseItem[] } {
  // The Native DICOM Model never needs a DTD, and refusing one rules out entity expansion tricks.
  if (/<!DOCTYPE|<!ENTITY/i.test(body)) throw new Error('STOW response XML carries a DTD; refused');
  let doc: unknown;
  try {
    doc = xml.parse(body, true);
  } catch (err) {
    throw new Error(`STOW response is not valid XML: ${(err as Error).message}`);
  }
  const root = isObject(doc) ? doc['NativeDicomModel'] : undefined;
  if (!isObject(root)) throw new Error('STOW response XML has no NativeDicomModel root');
  const attrs = xmlAttributes(root);
  return {
    referenced: xmlItems(attrs, TAG.ReferencedSOPSequence).map((i) => toItem(i, TAG.WarningReason)),
    failed: xmlItems(attrs, TAG.FailedSOPSequence).map((i) => toItem(i, TAG.FailureReason)),
  };
}

function xmlAttributes(node: unknown): XmlAttribute[] {
  return isObject(node) && Array.isArray(node['DicomAttribute']) ? (node['DicomAttribute'] as unknown[]).filter(isObject) : [];
}

function xmlItems(attrs: XmlAttribute[], sequence: string): Flat[] {
  // Only <Item> children count: Orthanc's plugin 1.7 also writes empty <Value number="n"/> siblings
  // into sequences, which carry nothing.
  const items = attrs.find((a) => a['@_tag']?.toUpperCase() === sequence)?.Item ?? [];
  return items.map((item) => {
    const flat: Flat = new Map();
    for (const a of xmlAttributes(item)) {
      // A <Value> with attributes parses to { '#text': ..., '@_number': ... }.
      const v = a.Value?.[0];
      if (a['@_tag'] && v !== undefined) flat.set(a['@_tag'].toUpperCase(), isObject(v) ? v['#text'] : v);
    }
    return flat;
  });
}

// --- shared helpers ---------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/** US values arrive as numbers in JSON and as decimal text in XML; a few receivers write hex. */
function toCode(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff) return v;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  const n = /^0x[0-9a-f]{1,4}$/i.test(s) ? Number.parseInt(s.slice(2), 16) : /^\d{1,5}$/.test(s) ? Number(s) : Number.NaN;
  return Number.isInteger(n) && n <= 0xffff ? n : undefined;
}
