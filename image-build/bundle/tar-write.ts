// A minimal POSIX tar writer for bundles: regular files only, ustar headers, a pax extended header
// when a path does not fit ustar's 100-byte name (node_modules paths often do not). Every field is
// a pure function of (path, size, mode, mtime), so the same files give the same bytes.
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export const BLOCK = 512;
/** ustar's 11 octal digits; bundle files are far below this. */
export const MAX_ENTRY_SIZE = 0o77777777777;

export interface TarEntry {
  /** Relative, '/'-separated. */
  path: string;
  size: number;
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
}

function octal(value: number, width: number): string {
  // width includes the terminating NUL.
  const s = value.toString(8);
  if (s.length > width - 1) throw new RangeError(`tar: ${value} does not fit ${width - 1} octal digits`);
  return s.padStart(width - 1, '0') + '\0';
}

function ustarHeader(name: Buffer, size: number, mode: number, mtime: number, typeflag: '0' | 'x'): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0, 0, Math.min(name.length, 100));
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write(typeflag, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  // uname/gname stay empty: no build-host user names in a reproducible bundle.
  h.write(octal(0, 8), 329, 'ascii');
  h.write(octal(0, 8), 337, 'ascii');
  h.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** One pax record: "<len> <key>=<value>\n", where <len> counts itself. */
export function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + String(bodyLen).length;
  if (String(len).length + bodyLen !== len) len = bodyLen + String(len).length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

/** The header block(s) for one regular file: a pax header first when the path needs one. */
export function entryHeader(entry: TarEntry): Buffer {
  if (!Number.isSafeInteger(entry.size) || entry.size < 0 || entry.size > MAX_ENTRY_SIZE) throw new RangeError(`tar: ${entry.path}: size ${entry.size} out of range`);
  const name = Buffer.from(entry.path, 'utf8');
  // ustar names are ASCII in practice; anything longer or non-ASCII goes through pax (UTF-8 by spec).
  const needsPax = name.length > 100 || /[^\x20-\x7e]/.test(entry.path);
  const mtime = Math.floor(entry.mtime);
  if (!needsPax) return ustarHeader(name, entry.size, entry.mode, mtime, '0');
  const records = paxRecord('path', entry.path);
  // The ustar name of a pax'd entry is only a fallback for old readers: a deterministic ASCII stub.
  const stub = Buffer.from(entry.path.replace(/[^\x20-\x7e]/g, '_').slice(-100), 'ascii');
  const paxName = Buffer.from(`PaxHeader/${entry.path.replace(/[^\x20-\x7e]/g, '_').split('/').pop() ?? ''}`.slice(0, 100), 'ascii');
  return Buffer.concat([ustarHeader(paxName, records.length, 0o644, mtime, 'x'), records, padding(records.length), ustarHeader(stub, entry.size, entry.mode, mtime, '0')]);
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** Writes entries into a stream (the gzip stream) with backpressure; checks each body's length. */
export class TarWriter {
  private readonly out: Writable;

  constructor(out: Writable) {
    this.out = out;
  }

  private async put(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    if (!this.out.write(buf)) await once(this.out, 'drain');
  }

  async addFile(entry: TarEntry, body: Buffer | AsyncIterable<Buffer>): Promise<void> {
    await this.put(entryHeader(entry));
    let written = 0;
    if (Buffer.isBuffer(body)) {
      written = body.length;
      if (written === entry.size) await this.put(body);
    } else {
      for await (const chunk of body) {
        written += chunk.length;
        if (written > entry.size) break;
        await this.put(chunk);
      }
    }
    // A file that changed size between hashing and writing would make a corrupt archive.
    if (written !== entry.size) throw new Error(`tar: ${entry.path} changed while being bundled (expected ${entry.size} bytes, read ${written})`);
    await this.put(padding(entry.size));
  }

  async finish(): Promise<void> {
    await this.put(END_OF_ARCHIVE);
  }
}
