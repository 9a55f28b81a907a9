// Accept negotiation and request Content-Type checks for the STOW-RS receiver.
import { describe, expect, it } from 'vitest';
import { checkStowBody, responseFormat } from '../../../../fleet/ingest/negotiate.ts';

describe('responseFormat', () => {
  it('defaults to DICOM JSON and honours explicit choices and q-values', () => {
    expect(responseFormat(undefined)).toBe('json');
    expect(responseFormat('*/*')).toBe('json');
    expect(responseFormat('application/dicom+xml')).toBe('xml');
    expect(responseFormat('application/dicom+json, application/dicom+xml')).toBe('json');
    expect(responseFormat('application/dicom+json;q=0.5, application/dicom+xml')).toBe('xml');
    expect(responseFormat('multipart/related; type="application/dicom+xml"')).toBe('xml');
    expect(responseFormat('application/json')).toBe('json');
  });

  it('returns undefined when nothing offered is acceptable', () => {
    expect(responseFormat('image/png')).toBeUndefined();
    expect(responseFormat('application/dicom+json;q=0')).toBeUndefined();
    expect(responseFormat('application/dicom+xml', ['json'])).toBeUndefined();
  });
});

describe('checkStowBody', () => {
  it('takes multipart/related of application/dicom, with or without the type parameter', () => {
    expect(checkStowBody('multipart/related; type="application/dicom"; boundary=abc')).toEqual({ ok: true, boundary: 'abc', partType: 'application/dicom' });
    expect(checkStowBody('multipart/related; boundary="a b"')).toEqual({ ok: true, boundary: 'a b' });
  });

  it('answers 415 for other media types and 400 for a multipart without boundary', () => {
    expect(checkStowBody(undefined)).toMatchObject({ ok: false, status: 415 });
    expect(checkStowBody('application/dicom')).toMatchObject({ ok: false, status: 415 });
    expect(checkStowBody('multipart/form-data; boundary=x')).toMatchObject({ ok: false, status: 415 });
    expect(checkStowBody('multipart/related; type="application/dicom+json"; boundary=x')).toMatchObject({ ok: false, status: 415 });
    expect(checkStowBody('multipart/related; type="application/dicom"')).toMatchObject({ ok: false, status: 400 });
  });
});
