// Store Instances Response bodies written here after PS3.18 §10.5.3 (JSON per Annex F, XML per
// PS3.19 Annex A), plus the shapes Orthanc 1.10 + DICOMweb plugin 1.7 was seen to send.
import { describe, expect, it } from 'vitest';
import { bodyFormat, parseStowResponse } from '../../../../shared/dicomweb/stow-response-reader.ts';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const ui = (v: string) => ({ vr: 'UI', Value: [v] });
const us = (v: number) => ({ vr: 'US', Value: [v] });
const refItem = (uid: string, warning?: number) => ({
  '00081150': ui(MR),
  '00081155': ui(uid),
  '00081190': { vr: 'UR', Value: [`https://pacs.example/dicom-web/studies/1.2.3/series/1.2.3.4/instances/${uid}`] },
  ...(warning !== undefined ? { '00081196': us(warning) } : {}),
});
const failItem = (uid: string, reason?: number) => ({ '00081150': ui(MR), '00081155': ui(uid), ...(reason !== undefined ? { '00081197': us(reason) } : {}) });

function stowJson(referenced: object[], failed: object[]): string {
  return JSON.stringify({
    '00081190': { vr: 'UR', Value: ['https://pacs.example/dicom-web/studies/1.2.3'] },
    ...(failed.length ? { '00081198': { vr: 'SQ', Value: failed } } : {}),
    ...(referenced.length ? { '00081199': { vr: 'SQ', Value: referenced } } : {}),
  });
}

function xmlAttr(tag: string, vr: string, inner: string): string {
  return `<DicomAttribute tag="${tag}" vr="${vr}">${inner}</DicomAttribute>`;
}
const xmlValue = (v: string | number) => `<Value number="1">${v}</Value>`;
function xmlItem(n: number, uid: string, reasonTag?: string, reason?: number): string {
  return `<Item number="${n}">${xmlAttr('00081150', 'UI', xmlValue(MR))}${xmlAttr('00081155', 'UI', xmlValue(uid))}${
    reasonTag && reason !== undefined ? xmlAttr(reasonTag, 'US', xmlValue(reason)) : ''
  }</Item>`;
}
function stowXml(body: string, prefix = ''): string {
  const p = prefix ? `${prefix}:` : '';
  const ns = prefix ? `xmlns:${prefix}` : 'xmlns';
  // Prefixing only the root is enough to prove the parser ignores namespace prefixes.
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${p}NativeDicomModel ${ns}="http://dicom.nema.org/PS3.19/models/NativeDICOM">${body}</${p}NativeDicomModel>`;
}

describe('bodyFormat', () => {
  it('follows the Content-Type, parameters and case aside', () => {
    expect(bodyFormat('application/dicom+json; charset=utf-8', '<x/>')).toBe('json');
    expect(bodyFormat('Application/DICOM+XML', '{}')).toBe('xml');
    expect(bodyFormat('application/json', '')).toBe('json');
    expect(bodyFormat('text/xml', '')).toBe('xml');
  });

  it('sniffs the first byte when Content-Type is missing or generic (Orthanc 400/409)', () => {
    expect(bodyFormat(undefined, '  {"00081198":{}}')).toBe('json');
    expect(bodyFormat(undefined, '[{}]')).toBe('json');
    expect(bodyFormat('application/octet-stream', '\n<?xml version="1.0"?><NativeDicomModel/>')).toBe('xml');
    expect(bodyFormat('text/plain', 'Bad Request')).toBeUndefined();
  });
});

describe('parseStowResponse, DICOM JSON', () => {
  it('HTTP 200 shape: every instance in ReferencedSOPSequence', () => {
    const r = parseStowResponse(stowJson([refItem('1.1'), refItem('1.2')], []), 'json');
    expect(r.referenced).toEqual([
      { sopInstanceUid: '1.1', sopClassUid: MR },
      { sopInstanceUid: '1.2', sopClassUid: MR },
    ]);
    expect(r.failed).toEqual([]);
  });

  it('HTTP 202 shape: stored with a WarningReason next to failures with FailureReasons', () => {
    const r = parseStowResponse(stowJson([refItem('1.1', 0xb000)], [failItem('1.2', 0xa700), failItem('1.3', 0xc000)]), 'json');
    expect(r.referenced).toEqual([{ sopInstanceUid: '1.1', sopClassUid: MR, reason: 0xb000 }]);
    expect(r.failed).toEqual([
      { sopInstanceUid: '1.2', sopClassUid: MR, reason: 0xa700 },
      { sopInstanceUid: '1.3', sopClassUid: MR, reason: 0xc000 },
    ]);
  });

  it('HTTP 409 shape: only FailedSOPSequence, one item without FailureReason', () => {
    const r = parseStowResponse(stowJson([], [failItem('1.1', 0xa900), failItem('1.2')]), 'json');
    expect(r.referenced).toEqual([]);
    expect(r.failed).toEqual([{ sopInstanceUid: '1.1', sopClassUid: MR, reason: 0xa900 }, { sopInstanceUid: '1.2', sopClassUid: MR }]);
  });

  it("Orthanc's shape: empty sequences present without a Value, a dataset wrapped in an array", () => {
    const body = JSON.stringify([{ '00080005': { vr: 'CS', Value: ['ISO_IR 100'] }, '00081198': { vr: 'SQ' }, '00081199': { vr: 'SQ', Value: [refItem('1.1')] } }]);
    const r = parseStowResponse(body, 'json');
    expect(r.referenced.map((i) => i.sopInstanceUid)).toEqual(['1.1']);
    expect(r.failed).toEqual([]);
  });

  it('reads reasons sent as decimal or hex strings; keeps UID-less refusals, drops UID-less confirmations', () => {
    const body = JSON.stringify({
      '00081198': {
        vr: 'SQ',
        Value: [
          { '00081155': ui('1.1'), '00081197': { vr: 'US', Value: ['42752'] } },
          { '00081155': ui('1.2'), '00081197': { vr: 'US', Value: ['0xC122'] } },
          // A part the receiver could not parse at all: it knows no UID to name.
          { '00081197': us(0xc000) },
          { '00081150': ui(MR) },
        ],
      },
      '00081199': {
        vr: 'SQ',
        Value: [{ '00081155': ui('1.3'), '00081196': { vr: 'US', Value: ['not a number'] } }, { '00081150': ui(MR) }],
      },
    });
    const r = parseStowResponse(body, 'json');
    expect(r.failed).toEqual([{ sopInstanceUid: '1.1', reason: 0xa700 }, { sopInstanceUid: '1.2', reason: 0xc122 }, { reason: 0xc000 }]);
    expect(r.referenced).toEqual([{ sopInstanceUid: '1.3' }]);
  });

  it("reads the m-box fleet receiver's private detail text (creator MBOX STOW 1, (0009,1001))", () => {
    const detail = { '00090010': { vr: 'LO', Value: ['MBOX STOW 1'] }, '00091001': { vr: 'LT', Value: ['disk full on pacs-2'] } };
    const foreign = { '00090010': { vr: 'LO', Value: ['OTHER VENDOR'] }, '00091001': { vr: 'LT', Value: ['ignored'] } };
    const r = parseStowResponse(stowJson([{ ...refItem('1.1'), ...foreign }], [{ ...failItem('1.2', 0xa700), ...detail }]), 'json');
    expect(r.failed).toEqual([{ sopInstanceUid: '1.2', sopClassUid: MR, reason: 0xa700, text: 'disk full on pacs-2' }]);
    expect(r.referenced[0]?.text).toBeUndefined();
  });

  it('throws with a reason on bodies that are not a response', () => {
    expect(() => parseStowResponse('{"00081199": ', 'json')).toThrow(/not valid JSON/);
    expect(() => parseStowResponse('"stored"', 'json')).toThrow(/not a DICOM JSON dataset/);
  });
});

describe('parseStowResponse, Native DICOM Model XML', () => {
  it('PS3.18 default encoding: referenced, failed with reasons, warnings', () => {
    const body = stowXml(
      xmlAttr('00081198', 'SQ', xmlItem(1, '1.2', '00081197', 0xa900) + xmlItem(2, '1.3', '00081197', 0x0122)) +
        xmlAttr('00081199', 'SQ', xmlItem(1, '1.1', '00081196', 0xb007)),
    );
    const r = parseStowResponse(body, 'xml');
    expect(r.referenced).toEqual([{ sopInstanceUid: '1.1', sopClassUid: MR, reason: 0xb007 }]);
    expect(r.failed).toEqual([
      { sopInstanceUid: '1.2', sopClassUid: MR, reason: 0xa900 },
      { sopInstanceUid: '1.3', sopClassUid: MR, reason: 0x0122 },
    ]);
  });

  it("Orthanc's XML: keyword attributes, empty <Value/> siblings of items, self-closed empty sequences", () => {
    const item = (n: number, uid: string) =>
      `<Item number="${n}"><DicomAttribute tag="00081150" vr="UI" keyword="ReferencedSOPClassUID"><Value number="1">${MR}</Value></DicomAttribute>` +
      `<DicomAttribute tag="00081155" vr="UI" keyword="ReferencedSOPInstanceUID"><Value number="1">${uid}</Value></DicomAttribute></Item><Value number="${n}" />`;
    const body = stowXml(
      '<DicomAttribute tag="00081198" vr="SQ" keyword="FailedSOPSequence" />' +
        `<DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence">${item(1, '1.1')}${item(2, '1.2')}</DicomAttribute>`,
    );
    const r = parseStowResponse(body, 'xml');
    expect(r.referenced.map((i) => i.sopInstanceUid)).toEqual(['1.1', '1.2']);
    expect(r.failed).toEqual([]);
  });

  it("reads the fleet receiver's private detail from XML too", () => {
    const inner =
      xmlAttr('00090010', 'LO', xmlValue('MBOX STOW 1')) +
      '<DicomAttribute tag="00091001" vr="LT" privateCreator="MBOX STOW 1"><Value number="1">not DICOM &amp; not parsed</Value></DicomAttribute>' +
      xmlAttr('00081197', 'US', xmlValue(0xc000));
    const r = parseStowResponse(stowXml(xmlAttr('00081198', 'SQ', `<Item number="1">${inner}</Item>`)), 'xml');
    expect(r.failed).toEqual([{ reason: 0xc000, text: 'not DICOM & not parsed' }]);
  });

  it('keeps UIDs as strings (no number coercion) and ignores namespace prefixes', () => {
    const body = stowXml(xmlAttr('00081199', 'SQ', xmlItem(1, '1.20')), 'dcm');
    expect(parseStowResponse(body, 'xml').referenced).toEqual([{ sopInstanceUid: '1.20', sopClassUid: MR }]);
  });

  it('refuses a DTD and bodies without the NativeDicomModel root', () => {
    expect(() => parseStowResponse('<!DOCTYPE x [<!ENTITY a "b">]><NativeDicomModel/>', 'xml')).toThrow(/DTD/);
    expect(() => parseStowResponse('<html><body>502 Bad Gateway</body></html>', 'xml')).toThrow(/NativeDicomModel/);
  });
});
