// HTTP Range for bundle downloads (RFC 9110 §14): one byte range, so a box resumes where its
// download stopped. Several ranges at once are answered with the whole file, which the RFC allows
// and no box needs otherwise.

export type RangeDecision =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  /** 416 with `Content-Range: bytes * /size`. */
  | { kind: 'unsatisfiable' };

/**
 * What to send for a `Range` header (and `If-Range`, which must equal the ETag for the range to
 * apply: the file could have been replaced since the first part was fetched).
 */
export function decideRange(range: string | undefined, size: number, opts: { ifRange?: string; etag?: string } = {}): RangeDecision {
  if (!range) return { kind: 'full' };
  if (opts.ifRange !== undefined && opts.ifRange !== opts.etag) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(range);
  // A syntactically different header (other unit, several ranges) is ignored, as the RFC says.
  if (!m) return { kind: 'full' };
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    // Suffix: the last N bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (!Number.isSafeInteger(end) || end < start) return b !== '' && Number(b) < start ? { kind: 'full' } : { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
