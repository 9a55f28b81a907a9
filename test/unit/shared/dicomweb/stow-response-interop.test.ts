// Contract between the two ends of m-box's own STOW-RS: what the fleet receiver writes
// (stow-response.ts) must come out of the box's reader (stow-response-reader.ts) and the client's
// verdicts unchanged, in both encodings, private detail text included.
import { describe, expect, it } from 'vitest';
import { FailureReason, stowResponseJson, stowResponseXml, type StoreInstancesResponse } from '../../../../shared/dicomweb/stow-response.ts';
import { parseStowResponse } from '../../../../shared/dicomweb/stow-response-reader.ts';
import { resultsFromExchange } from '../../../../shared/dicomweb/stow-outcome.ts';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const response: StoreInstancesResponse = {
  retrieveUrl: 'https://cloud.example/dicom-web/studies/1.2.3',
  referenced: [
    { sopClassUid: MR, sopInstanceUid: '1.2.3.1', retrieveUrl: 'https://cloud.example/dicom-web/studies/1.2.3/series/4/instances/1.2.3.1' },
    { sopClassUid: MR, sopInstanceUid: '1.2.3.2', warningReason: 0xb000, detail: 'PatientName coerced' },
  ],
  failed: [
    { sopClassUid: MR, sopInstanceUid: '1.2.3.3', failureReason: FailureReason.OutOfResources, detail: 'quota <exceeded> & retry later' },
    { sopClassUid: MR, sopInstanceUid: '1.2.3.4', failureReason: FailureReason.DuplicateSopInstance },
    { failureReason: FailureReason.CannotUnderstand, detail: 'part 5 is not DICOM' },
  ],
};

describe('fleet receiver response → box reader', () => {
  it.each([
    ['json', () => JSON.stringify(stowResponseJson(response))],
    ['xml', () => stowResponseXml(response)],
  ] as const)('%s round trip', (format, write) => {
    const parsed = parseStowResponse(write(), format);
    expect(parsed.referenced).toEqual([
      { sopInstanceUid: '1.2.3.1', sopClassUid: MR },
      { sopInstanceUid: '1.2.3.2', sopClassUid: MR, reason: 0xb000, text: 'PatientName coerced' },
    ]);
    expect(parsed.failed).toEqual([
      { sopInstanceUid: '1.2.3.3', sopClassUid: MR, reason: 0xa700, text: 'quota <exceeded> & retry later' },
      { sopInstanceUid: '1.2.3.4', sopClassUid: MR, reason: 0x0111 },
      { reason: 0xc000, text: 'part 5 is not DICOM' },
    ]);

    const sent = ['1.2.3.1', '1.2.3.2', '1.2.3.3', '1.2.3.4', '1.2.3.5'].map((uid) => ({ sopInstanceUid: uid, sopClassUid: MR, path: '/x', size: 1 }));
    const verdicts = resultsFromExchange(sent, { status: 202, response: parsed }).results.map((r) => [r.outcome, r.retryable, r.failureReason]);
    expect(verdicts).toEqual([
      ['stored', false, undefined],
      ['stored', false, undefined],
      ['failed', true, 0xa700],
      // The receiver holds the UID with other bytes: a person decides.
      ['failed', false, 0x0111],
      // The unnamed refusal can only be the one instance nobody else accounts for.
      ['failed', false, 0xc000],
    ]);
  });
});
