// Which request bodies the receiver takes and which response encodings it can give (PS3.18 8.7).
import { parseMediaType } from '../../shared/dicomweb/multipart-parser.ts';

export type ResponseFormat = 'json' | 'xml';

const FORMATS: Record<string, ResponseFormat> = {
  'application/dicom+json': 'json',
  'application/json': 'json',
  'application/dicom+xml': 'xml',
  'application/xml': 'xml',
  'text/xml': 'xml',
};

/**
 * The encoding the client accepts best, DICOM JSON when it does not say (PS3.18 10.5.1.3: JSON is
 * the default for the Store response); undefined when it accepts neither (406).
 */
export function responseFormat(accept: string | undefined, offered: readonly ResponseFormat[] = ['json', 'xml']): ResponseFormat | undefined {
  if (!accept || accept.trim() === '') return offered[0];
  let best: { format: ResponseFormat; q: number } | undefined;
  for (const range of accept.split(',')) {
    const { type, params } = parseMediaType(range);
    const q = params.q === undefined ? 1 : Number.parseFloat(params.q);
    if (!(q > 0)) continue;
    // Older STOW clients ask for multipart/related; type="application/dicom+xml".
    const named = type === 'multipart/related' ? params.type?.toLowerCase() : type;
    let format: ResponseFormat | undefined = named ? FORMATS[named] : undefined;
    if (!format && (type === '*/*' || type === 'application/*')) format = offered[0];
    if (!format && type === 'text/*') format = 'xml';
    if (!format || !offered.includes(format)) continue;
    if (!best || q > best.q) best = { format, q };
  }
  return best?.format;
}

export type BodyCheck =
  | { ok: true; boundary: string; partType?: string }
  | { ok: false; status: 400 | 415; error: string; message: string };

/** PS3.18 10.5.1.4: a multipart/related body of PS3.10 instances; anything else is 415, a broken header 400. */
export function checkStowBody(contentType: string | undefined): BodyCheck {
  if (!contentType) return { ok: false, status: 415, error: 'unsupported-media-type', message: 'no Content-Type; send multipart/related; type="application/dicom"' };
  const { type, params } = parseMediaType(contentType);
  if (type !== 'multipart/related') {
    return { ok: false, status: 415, error: 'unsupported-media-type', message: `Content-Type ${type} is not supported; send multipart/related; type="application/dicom"` };
  }
  const partType = params.type?.toLowerCase();
  // Metadata + bulk data (application/dicom+json or +xml parts) is a different store model, not taken here.
  if (partType !== undefined && partType !== 'application/dicom') {
    return { ok: false, status: 415, error: 'unsupported-media-type', message: `multipart/related type ${partType} is not supported; only application/dicom (PS3.10 instances)` };
  }
  if (!params.boundary) return { ok: false, status: 400, error: 'bad-request', message: 'multipart/related Content-Type without a boundary parameter' };
  return { ok: true, boundary: params.boundary, ...(partType ? { partType } : {}) };
}
