// A strict streaming tar reader for bundles: ustar headers with verified checksums, pax 'x' headers
// for long paths, regular files only. Anything else — links, devices, directories, global pax
// headers, absolute or '..' paths, data after the end-of-archive blocks — is refused as
// 'unreadable'. Bodies are handed out as chunks, never buffered whole.
import { BundleError } from '../../shared/update/manifest.ts';
import { BLOCK } from './tar-write.ts';

const MAX_PAX_SIZE = 64 * 1024;
const RECORD = 10240;
/** path and size are used; the rest is metadata a bundle ignores. linkpath, sparse files … are refused. */
const PAX_KEYS = new Set(['path', 'size', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'uname', 'gname']);

export interface TarHeader {
  path: string;
  size: number;
  mode: number;
  mtime: number;
}

const unreadable = (msg: string): BundleError => new BundleError('unreadable', msg);

/** Pulls bytes from an async chunk source; `take` hands out views of the chunks it holds. */
class ByteSource {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;
  private done = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.off >= this.buf.length) {
      if (this.done) return false;
      let r: IteratorResult<Buffer>;
      try {
        r = await this.it.next();
      } catch (err) {
        throw err instanceof BundleError ? err : unreadable(`not a readable gzip stream: ${(err as Error).message}`);
      }
      if (r.done) {
        this.done = true;
        return false;
      }
      this.buf = r.value;
      this.off = 0;
    }
    return true;
  }

  /** Up to `max` bytes (at least one); throws at the end of the stream. */
  async take(max: number, what: string): Promise<Buffer> {
    if (!(await this.fill())) throw unreadable(`truncated: the stream ends inside ${what}`);
    const n = Math.min(max, this.buf.length - this.off);
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }

  async exactly(n: number, what: string): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    const first = await this.take(n, what);
    if (first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const p = await this.take(n - got, what);
      parts.push(p);
      got += p.length;
    }
    return Buffer.concat(parts, n);
  }

  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) left -= (await this.take(left, what)).length;
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }
}

function field(h: Buffer, off: number, len: number): string {
  const raw = h.subarray(off, off + len);
  const nul = raw.indexOf(0);
  return (nul === -1 ? raw : raw.subarray(0, nul)).toString('utf8');
}

function octalField(h: Buffer, off: number, len: number, what: string): number {
  const s = field(h, off, len).trim();
  // GNU base-256 (high bit set) and anything non-octal is refused: bundles never need them.
  if (!/^[0-7]{1,12}$/.test(s)) throw unreadable(`tar header: bad ${what} field`);
  return parseInt(s, 8);
}

export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < body.length) {
    const space = body.indexOf(0x20, off);
    if (space === -1) throw unreadable('pax header: malformed record');
    const len = Number(body.subarray(off, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= space - off + 1 || off + len > body.length || body[off + len - 1] !== 0x0a) throw unreadable('pax header: malformed record');
    const rec = body.subarray(space + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq <= 0) throw unreadable('pax header: malformed record');
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}

export class TarReader {
  private readonly src: ByteSource;
  /** Body bytes (plus padding) of the current entry not yet consumed. */
  private pending = 0;
  private pendingPad = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.src = new ByteSource(source);
  }

  /** The next entry's header, or null after the end-of-archive blocks (and nothing after them). */
  async next(): Promise<TarHeader | null> {
    if (this.ended) return null;
    await this.src.skip(this.pending + this.pendingPad, 'an entry');
    this.pending = this.pendingPad = 0;
    let pax: Map<string, string> | undefined;
    for (;;) {
      const h = await this.src.exactly(BLOCK, 'a tar header');
      if (h.every((b) => b === 0)) {
        const second = await this.src.exactly(BLOCK, 'the end-of-archive blocks');
        if (!second.every((b) => b === 0) || pax) throw unreadable('tar: malformed end of archive');
        await this.zeroPaddingOnly();
        this.ended = true;
        return null;
      }
      const stored = octalField(h, 148, 8, 'checksum');
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      if (sum !== stored) throw unreadable('tar header: checksum mismatch');
      if (field(h, 257, 6) !== 'ustar' || h.toString('ascii', 263, 265) !== '00') throw unreadable('tar header: not a POSIX ustar header');
      const type = String.fromCharCode(h[156]!);
      const size = octalField(h, 124, 12, 'size');
      if (type === 'x') {
        if (pax) throw unreadable('tar: two pax headers in a row');
        if (size > MAX_PAX_SIZE) throw unreadable(`pax header of ${size} bytes is too large`);
        pax = parsePax(await this.src.exactly(size, 'a pax header'));
        await this.src.skip((BLOCK - (size % BLOCK)) % BLOCK, 'a pax header');
        continue;
      }
      if (type !== '0' && type !== '\0') throw unreadable(`tar: entry type '${type === '\0' ? 'NUL' : type}' refused: bundles carry regular files only`);
      const prefix = field(h, 345, 155);
      const name = field(h, 0, 100);
      let path = prefix ? `${prefix}/${name}` : name;
      let entrySize = size;
      if (pax) {
        for (const key of pax.keys()) if (!PAX_KEYS.has(key)) throw unreadable(`pax header: unsupported key '${key}'`);
        path = pax.get('path') ?? path;
        const paxSize = pax.get('size');
        if (paxSize !== undefined) {
          if (!/^\d{1,15}$/.test(paxSize)) throw unreadable('pax header: bad size');
          entrySize = Number(paxSize);
        }
      }
      if (!isSafeRelativePath(path)) throw unreadable(`tar: unsafe entry path '${path}'`);
      this.pending = entrySize;
      this.pendingPad = (BLOCK - (entrySize % BLOCK)) % BLOCK;
      return { path, size: entrySize, mode: octalField(h, 100, 8, 'mode'), mtime: octalField(h, 136, 12, 'mtime') };
    }
  }

  /**
   * After the end blocks: nothing, or the zero padding tar(1) adds to fill its last 10240-byte
   * record. Anything else is data smuggled past the archive's end.
   */
  private async zeroPaddingOnly(): Promise<void> {
    let zeros = 0;
    while (!(await this.src.atEnd())) {
      const chunk = await this.src.take(RECORD, 'padding');
      zeros += chunk.length;
      if (zeros >= RECORD || !chunk.every((b) => b === 0)) throw unreadable('trailing data after the end of the archive');
    }
  }

  /** The current entry's body as chunks (views: copy or consume before the next pull). */
  async *body(): AsyncGenerator<Buffer> {
    while (this.pending > 0) {
      const chunk = await this.src.take(this.pending, 'a file body');
      this.pending -= chunk.length;
      yield chunk;
    }
  }

  /** The current entry's body in one buffer; refuses bodies above `max` bytes before reading them. */
  async readBody(max: number, what: string): Promise<Buffer> {
    if (this.pending > max) throw unreadable(`${what} is ${this.pending} bytes, more than the ${max} allowed`);
    const buf = await this.src.exactly(this.pending, what);
    this.pending = 0;
    return Buffer.from(buf);
  }
}
