// Streams one incoming object to a temp file while the inspector hashes and walks it. Memory
// stays bounded by the stream's high-water mark whatever the object's size.
import { closeSync, openSync, writev, writevSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { DatasetInspector, type Inspection } from './inspector.ts';

const writevAsync = promisify(writev);

export interface WrittenObject extends Inspection {
  tempPath: string;
  /** File descriptor, still open, written but not synced: whoever keeps the object syncs and closes it. */
  fd: number;
  /** Bytes in the file, meta included. */
  size: number;
}

export interface ObjectWriterOptions {
  tempPath: string;
  transferSyntaxUid: string;
  /** Bytes written before the dataset (preamble + file meta); not hashed, not walked. */
  prefix: Buffer;
  highWaterMark?: number;
}

const FLUSH_BYTES = 1024 * 1024;

export class ObjectWriter extends Writable {
  readonly tempPath: string;
  private readonly prefix: Buffer;
  private readonly inspector: DatasetInspector;
  private fd: number | undefined;
  private size = 0;
  /** Small objects are written in one go at the end: fewer thread-pool round trips per object. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private resultValue: WrittenObject | undefined;

  constructor(opts: ObjectWriterOptions) {
    super({ highWaterMark: opts.highWaterMark ?? 4 * 1024 * 1024 });
    this.tempPath = opts.tempPath;
    this.prefix = opts.prefix;
    this.inspector = new DatasetInspector(opts.transferSyntaxUid);
    // Opened synchronously (microseconds): an asynchronous open would hold back every write of a
    // small object, which often arrives whole before the thread pool answers.
    this.fd = openSync(this.tempPath, 'wx', 0o640);
    if (this.prefix.length > 0) this.queue(this.prefix);
  }
  /** The stored object, once 'finish' has fired. */
  get result(): WrittenObject {
    if (!this.resultValue) throw new Error(`object ${this.tempPath} is not finished`);
    return this.resultValue;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk);
    this.queue(chunk);
    if (this.pendingBytes < FLUSH_BYTES) callback();
    else this.flush().then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) {
      this.take(chunk);
      this.queue(chunk);
    }
    if (this.pendingBytes < FLUSH_BYTES) callback();
    else this.flush().then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.inspector.destroy();
    (this.resultValue ? Promise.resolve() : unlink(this.tempPath).catch(() => undefined)).then(() => callback(error));
  }

  private take(chunk: Buffer): void {
    this.inspector.push(chunk);
  }

  private queue(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** Large objects stream out in 1 MiB steps on the thread pool. */
  private async flush(): Promise<void> {
    const chunks = this.takePending();
    if (chunks.length === 0) return;
    const { bytesWritten: written } = await writevAsync(this.fd!, chunks);
    this.count(chunks, written);
  }

  private takePending(): Buffer[] {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return chunks;
  }

  private count(chunks: Buffer[], written: number): void {
    const expected = chunks.reduce((n, c) => n + c.length, 0);
    if (written !== expected) throw Object.assign(new Error(`short write: ${written} of ${expected} bytes`), { code: 'ENOSPC' });
    this.size += written;
  }

  private async finish(): Promise<void> {
    const inspection = await this.inspector.end();
    // The tail (for most objects: all of it) goes out in one synchronous writev: a page-cache
    // write of under 1 MiB costs less than the thread-pool round trip it would otherwise take.
    const chunks = this.takePending();
    if (chunks.length > 0) this.count(chunks, writevSync(this.fd!, chunks));
    // Not synced here: the store syncs it once it knows the content is new (a re-sent duplicate
    // costs no fsync at all).
    const fd = this.fd!;
    this.fd = undefined;
    this.resultValue = { tempPath: this.tempPath, fd, size: this.size, ...inspection };
  }
}
