// The STOW-RS response payload (PS3.18 Annex I, Store Instances Response Module) as the fleet
// receiver sends it: DICOM JSON (PS3.18 F.2) or Native DICOM Model XML (PS3.19 A.1), with the HTTP
// status that goes with it. Reading one back is stow-response-reader.ts.

/** Failure Reason (0008,1197) values: PS3.18 Table I.2-2, plus the ones this receiver adds (PS3.2 conformance). */
export const FailureReason = {
  /** General failure in processing (an I/O error that is not lack of space). */
  ProcessingFailure: 0x0110,
  /**
   * The SOP Instance UID is already stored with different content (PS3.7 C.4 "Duplicate SOP
   * Instance"); not in Table I.2-2, which allows additional codes.
   */
  DuplicateSopInstance: 0x0111,
  SopClassNotSupported: 0x0122,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  TransferSyntaxNotSupported: 0xc122,
  /**
   * The instance's Study Instance UID differs from the one in the target resource (PS3.18
   * 10.5.1.1.1). Table I.2-2 has no code for it; 0xC409 is the one dcm4chee-arc uses.
   */
  StudyInstanceUidMismatch: 0xc409,
} as const;

/** Warning Reason (0008,1196) values (PS3.18 Table I.2-1 / PS3.4 B.2.3). */
export const WarningReason = {
  CoercionOfDataElements: 0xb000,
  ElementsDiscarded: 0xb006,
  DataSetDoesNotMatchSopClass: 0xb007,
} as const;

export interface StoredInstanceRef {
  sopClassUid: string;
  sopInstanceUid: string;
  /** Where the stored instance can be retrieved (WADO-RS instance URL). */
  retrieveUrl?: string;
  warningReason?: number;
  /** Human-readable note, sent in a private attribute (see DETAIL_CREATOR). */
  detail?: string;
}

export interface FailedInstanceRef {
  /** Unknown when the part could not be read as DICOM at all. */
  sopClassUid?: string;
  sopInstanceUid?: string;
  failureReason: number;
  detail?: string;
}

export interface StoreInstancesResponse {
  /**
   * The study URL when the request targeted one study; otherwise absent, and Retrieve URL
   * (Type 2) goes out empty.
   */
  retrieveUrl?: string;
  referenced: StoredInstanceRef[];
  failed: FailedInstanceRef[];
}

/**
 * PS3.18 Table 10.5.3-1: 200 all stored, 202 stored with failures or warnings, 409 nothing stored.
 * A response with no instances at all is the caller's 400 (no parts), never built here.
 */
export function stowHttpStatus(r: StoreInstancesResponse): 200 | 202 | 409 {
  if (r.referenced.length === 0) return 409;
  if (r.failed.length > 0 || r.referenced.some((i) => i.warningReason !== undefined)) return 202;
  return 200;
}

// The standard has no per-item free text in this module, so detail travels in one private
// element (PS3.5 7.8.1): creator (0009,0010) reserves block (0009,10xx), the text is (0009,1001).
export const DETAIL_CREATOR = 'MBOX STOW 1';
const TAG_CREATOR = '00090010';
const TAG_DETAIL = '00091001';

type Vr = 'UR' | 'UI' | 'US' | 'SQ' | 'LO' | 'LT';
interface Element {
  tag: string;
  vr: Vr;
  keyword?: string;
  values: Array<string | number | Element[]>;
  privateCreator?: string;
}

function el(tag: string, vr: Vr, keyword: string | undefined, values: Element['values']): Element {
  return { tag, vr, ...(keyword ? { keyword } : {}), values };
}

function detail(text: string | undefined): Element[] {
  // Control characters are neither LT text nor expressible in XML 1.0: dropped, so both encodings
  // carry the same string. LT holds at most 10240 characters.
  const clean = text?.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '').slice(0, 10240);
  if (!clean) return [];
  return [el(TAG_CREATOR, 'LO', undefined, [DETAIL_CREATOR]), { ...el(TAG_DETAIL, 'LT', undefined, [clean]), privateCreator: DETAIL_CREATOR }];
}

/** Attributes of the module in tag order (PS3.5 7.1: ascending, which JSON and XML readers expect too). */
function elements(r: StoreInstancesResponse): Element[] {
  const out: Element[] = [el('00081190', 'UR', 'RetrieveURL', r.retrieveUrl ? [r.retrieveUrl] : [])];
  if (r.failed.length > 0) {
    const items = r.failed.map((f) => [
      ...(f.sopClassUid ? [el('00081150', 'UI', 'ReferencedSOPClassUID', [f.sopClassUid])] : []),
      ...(f.sopInstanceUid ? [el('00081155', 'UI', 'ReferencedSOPInstanceUID', [f.sopInstanceUid])] : []),
      el('00081197', 'US', 'FailureReason', [f.failureReason]),
      ...detail(f.detail),
    ]);
    out.push(el('00081198', 'SQ', 'FailedSOPSequence', items));
  }
  if (r.referenced.length > 0) {
    const items = r.referenced.map((s) => [
      el('00081150', 'UI', 'ReferencedSOPClassUID', [s.sopClassUid]),
      el('00081155', 'UI', 'ReferencedSOPInstanceUID', [s.sopInstanceUid]),
      ...(s.retrieveUrl ? [el('00081190', 'UR', 'RetrieveURL', [s.retrieveUrl])] : []),
      ...(s.warningReason !== undefined ? [el('00081196', 'US', 'WarningReason', [s.warningReason])] : []),
      ...detail(s.detail),
    ]);
    out.push(el('00081199', 'SQ', 'ReferencedSOPSequence', items));
  }
  return out;
}

export interface DicomJsonValue {
  vr: string;
  Value?: Array<string | number | DicomJsonDataset>;
}
export type DicomJsonDataset = Record<string, DicomJsonValue>;

function toJson(els: Element[]): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const e of els) {
    const value: DicomJsonValue = { vr: e.vr };
    // PS3.18 F.2.5: an empty attribute has no "Value" member.
    if (e.values.length > 0) value.Value = e.values.map((v) => (Array.isArray(v) ? toJson(v) : v));
    out[e.tag] = value;
  }
  return out;
}

/** The response as a DICOM JSON object (application/dicom+json). */
export function stowResponseJson(r: StoreInstancesResponse): DicomJsonDataset {
  return toJson(elements(r));
}

const XML_NS = 'http://dicom.nema.org/PS3.19/models/NativeDICOM';

function escapeXml(text: string): string {
  // XML 1.0 cannot carry most C0 controls even escaped; a detail string might contain them.
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function toXml(els: Element[], indent: string): string {
  let out = '';
  for (const e of els) {
    const attrs = `tag="${e.tag}" vr="${e.vr}"${e.keyword ? ` keyword="${e.keyword}"` : ''}${e.privateCreator ? ` privateCreator="${escapeXml(e.privateCreator)}"` : ''}`;
    if (e.values.length === 0) {
      out += `${indent}<DicomAttribute ${attrs}/>\n`;
      continue;
    }
    out += `${indent}<DicomAttribute ${attrs}>\n`;
    e.values.forEach((v, i) => {
      if (Array.isArray(v)) out += `${indent}  <Item number="${i + 1}">\n${toXml(v, `${indent}    `)}${indent}  </Item>\n`;
      else out += `${indent}  <Value number="${i + 1}">${escapeXml(String(v))}</Value>\n`;
    });
    out += `${indent}</DicomAttribute>\n`;
  }
  return out;
}

/** The response as a Native DICOM Model document (application/dicom+xml). */
export function stowResponseXml(r: StoreInstancesResponse): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<NativeDicomModel xmlns="${XML_NS}">\n${toXml(elements(r), '  ')}</NativeDicomModel>\n`;
}

