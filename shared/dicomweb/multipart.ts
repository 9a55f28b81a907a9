// multipart/related request bodies for STOW-RS (PS3.18 §10.5, RFC 2387/2046): one application/dicom
// part per Part 10 file, each file streamed from disk so a batch of large instances never sits in
// memory, and an exact Content-Length known before the first byte is sent.
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

export interface MultipartFile {
  path: string;
  /** Bytes the file holds; the body's Content-Length is built from these, so they must be exact. */
  size: number;
}

export interface MultipartBody {
  boundary: string;
  /** Full Content-Type header value for the request. */
  contentType: string;
  /** Exact byte length of what open() yields. */
  contentLength: number;
  /** A fresh stream of the body each time (a retry needs a new one). */
  open(): Readable;
}

export const PART_CONTENT_TYPE = 'application/dicom';
const CRLF = '\r\n';
// RFC 2046 caps a boundary at 70 characters.
const MAX_BOUNDARY = 70;

/**
 * A boundary that cannot realistically occur inside a part: 24 random bytes (192 bits) make a
 * chance collision with file contents negligible, so the files need no scan (which would mean
 * reading every file twice). The prefix only makes captures easier to read.
 */
export function randomBoundary(): string {
  return `mbox-stow-${randomBytes(24).toString('hex')}`;
}

function checkBoundary(boundary: string): void {
  // Only token characters, so the Content-Type parameter needs no quoting (some servers mishandle
  // quoted boundaries).
  if (!/^[0-9A-Za-z'()+_,.\/:=?-]{1,70}$/.test(boundary) || boundary.length > MAX_BOUNDARY) {
    throw new Error(`invalid multipart boundary ${JSON.stringify(boundary)}: 1-${MAX_BOUNDARY} token characters expected`);
  }
}

function partHeader(boundary: string, first: boolean): Buffer {
  // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1), hence none before the first.
  return Buffer.from(`${first ? '' : CRLF}--${boundary}${CRLF}Content-Type: ${PART_CONTENT_TYPE}${CRLF}${CRLF}`, 'latin1');
}

function closing(boundary: string, empty: boolean): Buffer {
  return Buffer.from(`${empty ? '' : CRLF}--${boundary}--${CRLF}`, 'latin1');
}

/** Describes (and can stream) a multipart/related body of application/dicom parts. */
export function multipartRelated(files: readonly MultipartFile[], boundary: string = randomBoundary()): MultipartBody {
  checkBoundary(boundary);
  for (const f of files) {
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw new Error(`multipart part ${f.path}: invalid size ${f.size}`);
  }
  const headerBytes = files.reduce((n, _f, i) => n + partHeader(boundary, i === 0).length, 0);
  const contentLength = headerBytes + files.reduce((n, f) => n + f.size, 0) + closing(boundary, files.length === 0).length;
  return {
    boundary,
    contentType: `multipart/related; type="${PART_CONTENT_TYPE}"; boundary=${boundary}`,
    contentLength,
    open: () => Readable.from(generate(files, boundary), { objectMode: false }),
  };
}

async function* generate(files: readonly MultipartFile[], boundary: string): AsyncGenerator<Buffer> {
  for (const [i, f] of files.entries()) {
    yield partHeader(boundary, i === 0);
    // The advertised Content-Length is built from the declared sizes, so a file that changed since
    // it was sized must fail the request here rather than yield a body that lies about its length.
    const handle = await open(f.path, 'r');
    let sent = 0;
    try {
      const actual = (await handle.stat()).size;
      if (actual !== f.size) throw new Error(`multipart part ${f.path}: declared ${f.size} bytes, file has ${actual}`);
      if (f.size > 0) {
        for await (const chunk of handle.createReadStream({ start: 0, end: f.size - 1, autoClose: false }) as AsyncIterable<Buffer>) {
          sent += chunk.length;
          yield chunk;
        }
      }
    } finally {
      await handle.close();
    }
    if (sent !== f.size) throw new Error(`multipart part ${f.path}: expected ${f.size} bytes, read ${sent}`);
  }
  yield closing(boundary, files.length === 0);
}
