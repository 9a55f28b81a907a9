// Building the Store Instances Response (PS3.18 Annex I) in both encodings, checked against the
// standard's shapes and read back by the uplink's own parser.
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import {
  DETAIL_CREATOR,
  FailureReason,
  stowHttpStatus,
  stowResponseJson,
  stowResponseXml,
  WarningReason,
  type StoreInstancesResponse,
} from '../../../../shared/dicomweb/stow-response.ts';
import { parseStowResponse } from '../../../../shared/dicomweb/stow-response-reader.ts';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const base = 'http://127.0.0.1:8080/dicom-web/studies/1.2.3';
const mixed: StoreInstancesResponse = {
  retrieveUrl: base,
  referenced: [
    { sopClassUid: MR, sopInstanceUid: '1.2.3.4.1', retrieveUrl: `${base}/series/1.2.3.4/instances/1.2.3.4.1` },
    { sopClassUid: MR, sopInstanceUid: '1.2.3.4.2', retrieveUrl: `${base}/series/1.2.3.4/instances/1.2.3.4.2`, warningReason: WarningReason.DataSetDoesNotMatchSopClass, detail: 'meta says CT' },
  ],
  failed: [
    { sopClassUid: MR, sopInstanceUid: '1.2.3.4.3', failureReason: FailureReason.StudyInstanceUidMismatch, detail: 'study <9.9> & not 1.2.3\u0001' },
    { failureReason: FailureReason.CannotUnderstand, detail: 'part 4: not a DICOM Part 10 file' },
  ],
};

describe('stowResponseJson (PS3.18 F.2)', () => {
  it('writes the module with tags in ascending order, items per instance, empty Type 2 without Value', () => {
    const json = stowResponseJson(mixed);
    expect(Object.keys(json)).toEqual(['00081190', '00081198', '00081199']);
    expect(json['00081190']).toEqual({ vr: 'UR', Value: [base] });
    const failed = json['00081198']!.Value as Array<Record<string, { vr: string; Value?: unknown[] }>>;
    expect(failed[0]).toEqual({
      '00081150': { vr: 'UI', Value: [MR] },
      '00081155': { vr: 'UI', Value: ['1.2.3.4.3'] },
      '00081197': { vr: 'US', Value: [0xc409] },
      '00090010': { vr: 'LO', Value: [DETAIL_CREATOR] },
      '00091001': { vr: 'LT', Value: ['study <9.9> & not 1.2.3'] },
    });
    // Nothing to reference for a part that was not DICOM: the reason and detail only.
    expect(Object.keys(failed[1]!)).toEqual(['00081197', '00090010', '00091001']);
    const referenced = json['00081199']!.Value as Array<Record<string, { Value?: unknown[] }>>;
    expect(Object.keys(referenced[0]!)).toEqual(['00081150', '00081155', '00081190']);
    expect(referenced[1]!['00081196']).toEqual({ vr: 'US', Value: [0xb007] });

    const bare = stowResponseJson({ referenced: [{ sopClassUid: MR, sopInstanceUid: '1.1' }], failed: [] });
    expect(bare['00081190']).toEqual({ vr: 'UR' });
    expect(bare['00081198']).toBeUndefined();
  });
});

describe('stowResponseXml (PS3.19 Native DICOM Model)', () => {
  it('is well-formed, namespaced, escaped, and carries the same attributes', () => {
    const xml = stowResponseXml(mixed);
    expect(xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<NativeDicomModel xmlns="http:\/\/dicom.nema.org\/PS3.19\/models\/NativeDICOM">/);
    expect(xml).toContain('>study &lt;9.9&gt; &amp; not 1.2.3</Value>');
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', parseTagValue: false, isArray: (n) => ['DicomAttribute', 'Item', 'Value'].includes(n) }).parse(xml) as {
      NativeDicomModel: { DicomAttribute: Array<{ tag: string; vr: string; keyword?: string; Item?: Array<{ DicomAttribute: Array<{ tag: string; privateCreator?: string }> }> }> };
    };
    const top = doc.NativeDicomModel.DicomAttribute;
    expect(top.map((a) => `${a.tag}/${a.vr}/${a.keyword}`)).toEqual(['00081190/UR/RetrieveURL', '00081198/SQ/FailedSOPSequence', '00081199/SQ/ReferencedSOPSequence']);
    const failedItem = top[1]!.Item![0]!.DicomAttribute;
    expect(failedItem.map((a) => a.tag)).toEqual(['00081150', '00081155', '00081197', '00090010', '00091001']);
    expect(failedItem[4]!.privateCreator).toBe(DETAIL_CREATOR);
    expect(stowResponseXml({ referenced: [], failed: [{ failureReason: 0xc000 }] })).toContain('<DicomAttribute tag="00081190" vr="UR" keyword="RetrieveURL"/>');
  });

  it('reads back through the uplink reader the same way from either encoding', () => {
    const fromJson = parseStowResponse(JSON.stringify(stowResponseJson(mixed)), 'json');
    const fromXml = parseStowResponse(stowResponseXml(mixed), 'xml');
    expect(fromXml).toEqual(fromJson);
    expect(fromJson.referenced).toMatchObject([
      { sopInstanceUid: '1.2.3.4.1', sopClassUid: MR },
      { sopInstanceUid: '1.2.3.4.2', sopClassUid: MR, reason: 0xb007 },
    ]);
    expect(fromJson.failed[0]).toMatchObject({ sopInstanceUid: '1.2.3.4.3', sopClassUid: MR, reason: 0xc409 });
  });
});

describe('stowHttpStatus (PS3.18 Table 10.5.3-1)', () => {
  const ok = { sopClassUid: MR, sopInstanceUid: '1.1' };
  it('200 when all stored, 202 on any failure or warning, 409 when nothing was stored', () => {
    expect(stowHttpStatus({ referenced: [ok], failed: [] })).toBe(200);
    expect(stowHttpStatus({ referenced: [ok], failed: [{ failureReason: 0xc000 }] })).toBe(202);
    expect(stowHttpStatus({ referenced: [{ ...ok, warningReason: 0xb000 }], failed: [] })).toBe(202);
    expect(stowHttpStatus({ referenced: [], failed: [{ failureReason: 0xa900 }] })).toBe(409);
  });
});
