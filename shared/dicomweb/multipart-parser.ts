// Streaming multipart/related parser (RFC 2046 section 5.1, RFC 2387) for STOW-RS request bodies.
// Pull-driven: a part's body is read from the source only as fast as its consumer reads it, so a
// multi-gigabyte upload never sits in memory, and a part nobody reads is skipped, not buffered.
import { Readable } from 'node:stream';

export interface MultipartPart {
  /** 0-based position in the body. */
  index: number;
  /** Header names lowercased, values trimmed; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** The part's Content-Type, when it has one (RFC 2387: otherwise the multipart `type` applies). */
  contentType?: string;
  body: Readable;
}

export interface MultipartOptions {
  /** Largest header block a part may have (default 16 KiB): stops a body without CRLFCRLF eating memory. */
  maxHeaderBytes?: number;
}

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MediaType {
  /** type/subtype, lowercased. */
  type: string;
  /** Parameter names lowercased, values unquoted. */
  params: Record<string, string>;
}

/** Parses a Content-Type value such as `multipart/related; type="application/dicom"; boundary=x`. */
export function parseMediaType(value: string): MediaType {
  const semi = value.indexOf(';');
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params: Record<string, string> = {};
  const re = /;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;
  for (const m of (semi < 0 ? '' : value.slice(semi)).matchAll(re)) {
    const raw = m[2]!;
    params[m[1]!.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
  return { type, params };
}

// RFC 2046 bchars: a boundary a client could legitimately send, and nothing that could smuggle CRLF.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** Iterates the parts of a multipart body. Each part's body must be read or abandoned before asking for the next. */
export async function* parseMultipart(
  source: AsyncIterable<Buffer | string>,
  boundary: string,
  opts: MultipartOptions = {},
): AsyncGenerator<MultipartPart> {
  if (!BOUNDARY.test(boundary)) throw new MultipartError(`invalid multipart boundary "${boundary.slice(0, 80)}"`);
  const scanner = new Scanner(source[Symbol.asyncIterator](), boundary, opts.maxHeaderBytes ?? 16 * 1024);
  try {
    let more = await scanner.start();
    for (let index = 0; more; index++) {
      const headers = await scanner.readHeaders(index);
      const body = new PartBody(scanner, index);
      yield { index, headers, ...(headers['content-type'] ? { contentType: headers['content-type'] } : {}), body };
      // The consumer may have stopped early (a refused part, a failed write): skip to the next delimiter.
      more = await body.finish();
    }
    await scanner.discardEpilogue();
  } finally {
    await scanner.close();
  }
}

type AfterDelimiter = 'part' | 'close' | 'not-a-delimiter';

class Scanner {
  private readonly source: AsyncIterator<Buffer | string>;
  /** CRLF "--" boundary: the CRLF before a boundary line belongs to the delimiter, not the body. */
  private readonly delimiter: Buffer;
  private readonly maxHeaderBytes: number;
  private readonly boundary: string;
  private buf: Buffer;
  private eof = false;

  constructor(source: AsyncIterator<Buffer | string>, boundary: string, maxHeaderBytes: number) {
    this.source = source;
    this.boundary = boundary;
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    this.maxHeaderBytes = maxHeaderBytes;
    // A body may start with the boundary line itself: a virtual CRLF lets one search find it.
    this.buf = Buffer.from('\r\n', 'latin1');
  }

  /** Skips the preamble; false when the body holds no part at all (close delimiter first). */
  async start(): Promise<boolean> {
    const keep = this.delimiter.length - 1;
    for (;;) {
      const at = this.buf.indexOf(this.delimiter);
      if (at >= 0) {
        this.buf = this.buf.subarray(at + this.delimiter.length);
        const next = await this.afterDelimiter();
        if (next !== 'not-a-delimiter') return next === 'part';
        continue;
      }
      if (this.buf.length > keep) this.buf = this.buf.subarray(this.buf.length - keep);
      if (!(await this.fill())) throw new MultipartError(`no multipart boundary "--${this.boundary}" in the body`);
    }
  }

  async readHeaders(index: number): Promise<Record<string, string>> {
    // The buffer starts at the CRLF that ends the boundary line, so an empty header block is CRLFCRLF.
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end >= 0) {
        const block = this.buf.toString('latin1', 2, end);
        this.buf = this.buf.subarray(end + 4);
        return parseHeaders(block, index);
      }
      if (this.buf.length > this.maxHeaderBytes) throw new MultipartError(`part ${index}: headers exceed ${this.maxHeaderBytes} bytes`);
      if (!(await this.fill())) throw new MultipartError(`part ${index}: body ended inside the part headers`);
    }
  }

  /**
   * Next slice of the current part's body, never empty; at the part's delimiter, whether another
   * part follows.
   */
  async readBody(index: number): Promise<{ data: Buffer } | { more: boolean }> {
    const keep = this.delimiter.length - 1;
    for (;;) {
      const at = this.buf.indexOf(this.delimiter);
      if (at >= 0) {
        if (at > 0) {
          const data = this.buf.subarray(0, at);
          this.buf = this.buf.subarray(at);
          return { data };
        }
        this.buf = this.buf.subarray(this.delimiter.length);
        const next = await this.afterDelimiter();
        if (next !== 'not-a-delimiter') return { more: next === 'part' };
        // Boundary text followed by other bytes is content (RFC 2046 forbids it, so be lenient and exact).
        return { data: Buffer.from(this.delimiter) };
      }
      if (this.buf.length > keep) {
        const data = this.buf.subarray(0, this.buf.length - keep);
        this.buf = this.buf.subarray(this.buf.length - keep);
        return { data };
      }
      if (!(await this.fill())) throw new MultipartError(`part ${index}: body ended before its closing boundary`);
    }
  }

  async discardEpilogue(): Promise<void> {
    this.buf = Buffer.alloc(0);
    while (await this.fill()) this.buf = Buffer.alloc(0);
  }

  async close(): Promise<void> {
    if (!this.eof) await this.source.return?.();
  }

  /** Right after "--boundary": "--" closes, optional whitespace then CRLF opens a part. */
  private async afterDelimiter(): Promise<AfterDelimiter> {
    for (;;) {
      const b = this.buf;
      let i = 0;
      while (i < b.length && (b[i] === 0x20 || b[i] === 0x09)) i++;
      if (i === 0 && b.length >= 2 && b[0] === 0x2d) {
        if (b[1] !== 0x2d) return 'not-a-delimiter';
        this.buf = b.subarray(2);
        return 'close';
      }
      if (i + 2 <= b.length) {
        if (b[i] !== 0x0d || b[i + 1] !== 0x0a) return 'not-a-delimiter';
        // The CRLF stays: readHeaders expects the header block to start with it.
        this.buf = b.subarray(i);
        return 'part';
      }
      if (i > 1024) throw new MultipartError('boundary line padded with more than 1 KiB of whitespace');
      if (!(await this.fill())) throw new MultipartError('body ended right after a boundary, without "--" or a part');
    }
  }

  private async fill(): Promise<boolean> {
    if (this.eof) return false;
    const next = await this.source.next();
    if (next.done) {
      this.eof = true;
      return false;
    }
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value, 'latin1') : next.value;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }
}

function parseHeaders(block: string, index: number): Record<string, string> {
  const headers: Record<string, string> = {};
  let last: string | undefined;
  for (const line of block === '' ? [] : block.split('\r\n')) {
    if (/^[ \t]/.test(line) && last) {
      // Obsolete line folding (RFC 5322): continues the previous header.
      headers[last] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError(`part ${index}: malformed header line "${line.slice(0, 80)}"`);
    last = line.slice(0, colon).trim().toLowerCase();
    headers[last] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** One part's body, read from the scanner on demand. */
class PartBody extends Readable {
  private readonly scanner: Scanner;
  private readonly index: number;
  private readonly done: Promise<boolean>;
  private settle!: (more: boolean) => void;
  private fail!: (err: Error) => void;
  private settled = false;
  /** The scanner read in progress: only one may run at a time. */
  private pumping: Promise<void> | undefined;

  constructor(scanner: Scanner, index: number) {
    super({ highWaterMark: 256 * 1024 });
    this.scanner = scanner;
    this.index = index;
    this.done = new Promise<boolean>((resolve, reject) => {
      this.settle = (more) => {
        this.settled = true;
        resolve(more);
      };
      this.fail = (err) => {
        this.settled = true;
        reject(err);
      };
    });
    // finish() reports the outcome; a consumer that never calls it must not see an unhandled rejection.
    this.done.catch(() => undefined);
  }

  override _read(): void {
    this.pumping ??= this.pump().finally(() => {
      this.pumping = undefined;
    });
  }

  /** Reads on until the consumer's buffer is full, the part ends, or the consumer gives up. */
  private async pump(): Promise<void> {
    try {
      for (;;) {
        const r = await this.scanner.readBody(this.index);
        if ('more' in r) {
          this.settle(r.more);
          this.push(null);
          return;
        }
        if (this.destroyed || !this.push(r.data)) return;
      }
    } catch (err) {
      this.fail(err as Error);
      this.destroy(err as Error);
    }
  }

  /**
   * Waits for the part to end, discarding what the consumer left unread; true when another part
   * follows. Rejects when the body is malformed.
   */
  async finish(): Promise<boolean> {
    if (!this.settled) {
      if (this.destroyed) {
        await this.pumping;
        if (!this.settled) await this.skipRest();
      } else {
        this.resume();
      }
    }
    return this.done;
  }

  private async skipRest(): Promise<void> {
    try {
      for (;;) {
        const r = await this.scanner.readBody(this.index);
        if ('more' in r) return this.settle(r.more);
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }
}
