// A deliberately naive multipart/related reader for tests (split on the delimiter, whole body in
// memory), independent of the code under test and of the fleet receiver's streaming parser.
import { expect } from 'vitest';

export interface ParsedPart {
  headers: string;
  content: Buffer;
}

/** Boundary parameter of a multipart Content-Type, quoted or not. */
export function boundaryOf(contentType: string): string {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const b = m?.[1] ?? m?.[2];
  if (!b) throw new Error(`no boundary in ${contentType}`);
  return b;
}

/** RFC 2046 §5.1.1 read literally: preamble, parts separated by CRLF--boundary, closed by --boundary--. */
export function parseMultipart(body: Buffer, boundary: string): ParsedPart[] {
  const first = Buffer.from(`--${boundary}\r\n`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  expect(body.subarray(0, first.length).equals(first)).toBe(true);
  const parts: ParsedPart[] = [];
  let at = first.length;
  for (;;) {
    const end = body.indexOf(delimiter, at);
    expect(end, 'delimiter after part').toBeGreaterThan(-1);
    const part = body.subarray(at, end);
    const split = part.indexOf('\r\n\r\n');
    parts.push({ headers: part.subarray(0, split).toString('latin1'), content: part.subarray(split + 4) });
    const after = body.subarray(end + delimiter.length, end + delimiter.length + 2).toString('latin1');
    if (after === '--') {
      expect(body.subarray(end + delimiter.length + 2).toString('latin1')).toBe('\r\n');
      return parts;
    }
    expect(after).toBe('\r\n');
    at = end + delimiter.length + 2;
  }
}

