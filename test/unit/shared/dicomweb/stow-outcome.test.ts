import { describe, expect, it } from 'vitest';
import {
  classifyFailureReason,
  classifyHttpStatus,
  parseRetryAfter,
  resultsFromError,
  resultsFromExchange,
} from '../../../../shared/dicomweb/stow-outcome.ts';
import type { StowInstance } from '../../../../shared/dicomweb/types.ts';

const MR = '1.2.840.10008.5.1.4.1.1.4';
const inst = (uid: string): StowInstance => ({ sopInstanceUid: uid, sopClassUid: MR, path: `/data/${uid}.dcm`, size: 100 });
const three = [inst('1.1'), inst('1.2'), inst('1.3')];

describe('classifyFailureReason', () => {
  it.each([
    [0xa700, true, /out of resources/],
    [0xa7ff, true, /out of resources/],
    [0x0110, true, /processing failure/],
    [0x0112, true, /no such object instance/],
    [0x0213, true, /resource limitation/],
    [0xa900, false, /does not match SOP class/],
    [0xa9ff, false, /does not match SOP class/],
    [0xc000, false, /cannot understand/],
    [0xc409, false, /cannot understand/],
    [0xcfff, false, /cannot understand/],
    [0xc122, false, /transfer syntax not supported/],
    [0x0122, false, /SOP class not supported/],
    [0x0111, false, /different content/],
    [0xfe00, true, /not a reason this client knows/],
  ])('FailureReason %i: retryable %s', (code, retryable, detail) => {
    const v = classifyFailureReason(code);
    expect(v.retryable).toBe(retryable);
    expect(v.detail).toMatch(detail);
    expect(v.detail).toContain(`0x${code.toString(16).toUpperCase().padStart(4, '0')}`);
  });
});

describe('classifyHttpStatus', () => {
  it.each([
    [401, 3, true, /credentials/],
    [403, 1, true, /credentials/],
    [404, 3, true, /base URL/],
    [408, 3, true, /later/],
    [413, 3, true, /request too large/],
    [425, 3, true, /later/],
    [429, 3, true, /later/],
    [500, 3, true, /receiver error/],
    [503, 1, true, /receiver error/],
    [301, 3, true, /redirected to https:\/\/elsewhere/],
    [400, 3, true, /rejected batch of 3; send it alone/],
    [400, 1, false, /rejected this instance/],
    [422, 1, false, /rejected this instance/],
    [200, 3, true, /not confirmed by receiver \(HTTP 200\)/],
    [409, 3, true, /not confirmed by receiver \(HTTP 409\)/],
  ])('HTTP %i for a batch of %i: retryable %s', (status, n, retryable, detail) => {
    const v = classifyHttpStatus(status, n, 'https://elsewhere/dicom-web/studies');
    expect(v.retryable).toBe(retryable);
    expect(v.detail).toMatch(detail);
  });
});

describe('resultsFromExchange', () => {
  it('200 with every instance referenced: all stored, in the order sent', () => {
    const r = resultsFromExchange(three, {
      status: 200,
      response: { referenced: [{ sopInstanceUid: '1.3' }, { sopInstanceUid: '1.1' }, { sopInstanceUid: '1.2' }], failed: [] },
    });
    expect(r.httpStatus).toBe(200);
    expect(r.results).toEqual(three.map((i) => ({ sopInstanceUid: i.sopInstanceUid, outcome: 'stored', retryable: false })));
  });

  it('202 partial: stored with warning, failed retryable and permanent, one instance not mentioned', () => {
    const r = resultsFromExchange([...three, inst('1.4')], {
      status: 202,
      response: {
        referenced: [{ sopInstanceUid: '1.1', reason: 0xb000 }],
        failed: [
          { sopInstanceUid: '1.2', reason: 0xa700, text: 'disk full' },
          { sopInstanceUid: '1.3', reason: 0xa900 },
        ],
      },
    });
    expect(r.results).toEqual([
      { sopInstanceUid: '1.1', outcome: 'stored', retryable: false, detail: 'stored with WarningReason 0xB000: coercion of data elements' },
      { sopInstanceUid: '1.2', outcome: 'failed', retryable: true, failureReason: 0xa700, detail: 'FailureReason 0xA700: refused, out of resources (receiver: disk full)' },
      { sopInstanceUid: '1.3', outcome: 'failed', retryable: false, failureReason: 0xa900, detail: 'FailureReason 0xA900: data set does not match SOP class' },
      { sopInstanceUid: '1.4', outcome: 'failed', retryable: true, detail: 'not confirmed by receiver (HTTP 202)' },
    ]);
  });

  it('202 with a referenced instance and no warning item notes the warning status', () => {
    const r = resultsFromExchange([inst('1.1')], { status: 202, response: { referenced: [{ sopInstanceUid: '1.1' }], failed: [] } });
    expect(r.results[0]).toMatchObject({ outcome: 'stored', detail: 'stored (HTTP 202: receiver reported warnings)' });
  });

  it('409 all failed; a failed item without FailureReason stays retryable', () => {
    const r = resultsFromExchange(three.slice(0, 2), {
      status: 409,
      response: { referenced: [], failed: [{ sopInstanceUid: '1.1', reason: 0xc122 }, { sopInstanceUid: '1.2' }] },
    });
    expect(r.results.map((x) => [x.outcome, x.retryable, x.failureReason])).toEqual([
      ['failed', false, 0xc122],
      ['failed', true, undefined],
    ]);
    expect(r.results[1]?.detail).toMatch(/without a FailureReason \(HTTP 409\)/);
  });

  it('a confirmation wins over a refusal of the same UID', () => {
    const r = resultsFromExchange([inst('1.1')], { status: 202, response: { referenced: [{ sopInstanceUid: '1.1' }], failed: [{ sopInstanceUid: '1.1', reason: 0xc000 }] } });
    expect(r.results[0]?.outcome).toBe('stored');
  });

  it('pins a UID-less refusal on the one instance left unaccounted for, and only then', () => {
    const one = resultsFromExchange(three, {
      status: 202,
      response: { referenced: [{ sopInstanceUid: '1.1' }, { sopInstanceUid: '1.3' }], failed: [{ reason: 0xc000 }] },
    });
    expect(one.results[1]).toMatchObject({ sopInstanceUid: '1.2', outcome: 'failed', retryable: false, failureReason: 0xc000 });
    const two = resultsFromExchange(three, { status: 202, response: { referenced: [{ sopInstanceUid: '1.1' }], failed: [{ reason: 0xc000 }] } });
    expect(two.results.slice(1).map((x) => [x.retryable, x.failureReason])).toEqual([
      [true, undefined],
      [true, undefined],
    ]);
  });

  it("Orthanc's 400 for a batch with a non-DICOM part: listed instances stored, the other not", () => {
    const r = resultsFromExchange(three.slice(0, 2), { status: 400, response: { referenced: [{ sopInstanceUid: '1.1' }], failed: [] } });
    expect(r.results[0]?.outcome).toBe('stored');
    expect(r.results[1]).toMatchObject({ outcome: 'failed', retryable: true });
    // Sent alone, the same part is the request's only content: the refusal is the instance's.
    const alone = resultsFromExchange([inst('1.2')], { status: 400, response: { referenced: [], failed: [] } });
    expect(alone.results[0]).toMatchObject({ outcome: 'failed', retryable: false, detail: 'HTTP 400: receiver rejected this instance' });
  });

  it('200 without a body stores nothing: commit is verified, never assumed', () => {
    const r = resultsFromExchange(three, { status: 200, bodyProblem: 'response had no body' });
    for (const x of r.results) expect(x).toMatchObject({ outcome: 'failed', retryable: true, detail: 'not confirmed by receiver (HTTP 200); response had no body' });
  });

  it('5xx / 413 / 401 without a body: every instance failed with the status verdict, Retry-After kept', () => {
    const busy = resultsFromExchange(three, { status: 503, retryAfterMs: 30_000, bodyProblem: 'response had no body' });
    expect(busy.retryAfterMs).toBe(30_000);
    expect(busy.results.every((x) => x.outcome === 'failed' && x.retryable)).toBe(true);
    expect(resultsFromExchange(three, { status: 413 }).results[0]?.detail).toBe('HTTP 413: request too large');
    expect(resultsFromExchange(three, { status: 401 }).results[0]).toMatchObject({ retryable: true, detail: expect.stringMatching(/credentials/) });
  });

  it('resultsFromError gives every instance the same retryable verdict', () => {
    const r = resultsFromError(three, 'network error: ECONNREFUSED');
    expect(r.httpStatus).toBe(0);
    expect(r.results).toHaveLength(3);
    expect(r.results.every((x) => x.outcome === 'failed' && x.retryable && x.detail === 'network error: ECONNREFUSED')).toBe(true);
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP-dates, ignores garbage', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
