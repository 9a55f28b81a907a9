// Streams one incoming object to a temp file: hashes the dataset bytes, walks their structure and
// collects the indexed header on the way. Memory stays bounded by the stream's high-water mark
// whatever the object's size.
import { createHash, type Hash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { headerFromWalk, HEADER_TAGS } from '../../shared/dicom/header.ts';
import { encodingOf } from '../../shared/dicom/syntax.ts';
import { DatasetWalker } from '../../shared/dicom/walker.ts';
import type { DicomHeader } from '../../shared/types/store.ts';

export interface WrittenObject {
  tempPath: string;
  /** sha256 of the dataset bytes (file meta excluded). */
  contentHash: string;
  /** Bytes in the file, meta included. */
  size: number;
  /** Present when the dataset is structurally whole and carries the required UIDs. */
  header?: DicomHeader;
  /** Why the dataset cannot be accepted, when it cannot. */
  problem?: string;
}

export interface ObjectWriterOptions {
  tempPath: string;
  transferSyntaxUid: string;
  /** Bytes written before the dataset (preamble + file meta); not hashed, not walked. */
  prefix: Buffer;
  highWaterMark?: number;
}

export class ObjectWriter extends Writable {
  readonly tempPath: string;
  private readonly transferSyntaxUid: string;
  private readonly prefix: Buffer;
  private readonly hash: Hash = createHash('sha256');
  private readonly walker: DatasetWalker;
  private readonly littleEndian: boolean;
  private readonly inflater: InflateRaw | undefined;
  private inflated: Promise<void> = Promise.resolve();
  private file: FileHandle | undefined;
  private size = 0;
  private problem: string | undefined;
  private resultValue: WrittenObject | undefined;

  constructor(opts: ObjectWriterOptions) {
    super({ highWaterMark: opts.highWaterMark ?? 4 * 1024 * 1024 });
    this.tempPath = opts.tempPath;
    this.transferSyntaxUid = opts.transferSyntaxUid;
    this.prefix = opts.prefix;
    const enc = encodingOf(opts.transferSyntaxUid);
    this.littleEndian = enc.littleEndian;
    this.walker = new DatasetWalker({ explicitVr: enc.explicitVr, littleEndian: enc.littleEndian, collect: HEADER_TAGS });
    if (enc.deflated) {
      // Only the walk sees inflated bytes; the file keeps the deflated bytes as received.
      const inflater = createInflateRaw();
      this.inflater = inflater;
      inflater.on('data', (chunk: Buffer) => this.walk(chunk));
      this.inflated = new Promise((resolve) => {
        inflater.on('end', resolve);
        inflater.on('error', (err) => {
          this.problem ??= `deflated dataset does not inflate: ${err.message}`;
          resolve();
        });
      });
    }
  }

  /** The stored object, once 'finish' has fired. */
  get result(): WrittenObject {
    if (!this.resultValue) throw new Error(`object ${this.tempPath} is not finished`);
    return this.resultValue;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.tempPath, 'wx', 0o640)
      .then(async (fh) => {
        this.file = fh;
        if (this.prefix.length > 0) await this.append(this.prefix);
        callback();
      })
      .catch(callback);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk);
    this.append(chunk).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) this.take(chunk);
    this.appendMany(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const file = this.file;
    this.file = undefined;
    this.inflater?.destroy();
    (file ? file.close() : Promise.resolve())
      .catch(() => undefined)
      .then(() => (this.resultValue ? undefined : unlink(this.tempPath).catch(() => undefined)))
      .then(() => callback(error));
  }

  private take(chunk: Buffer): void {
    this.hash.update(chunk);
    if (this.inflater) this.inflater.write(chunk);
    else this.walk(chunk);
  }

  private walk(chunk: Buffer): void {
    if (this.problem) return;
    try {
      this.walker.push(chunk);
    } catch (err) {
      this.problem = (err as Error).message;
    }
  }

  private async append(chunk: Buffer): Promise<void> {
    await this.file!.write(chunk);
    this.size += chunk.length;
  }

  private async appendMany(chunks: Buffer[]): Promise<void> {
    await this.file!.writev(chunks);
    for (const c of chunks) this.size += c.length;
  }

  private async finish(): Promise<void> {
    if (this.inflater) {
      this.inflater.end();
      await this.inflated;
    }
    let header: DicomHeader | undefined;
    if (!this.problem) {
      try {
        header = headerFromWalk(this.walker.end(), this.transferSyntaxUid, this.littleEndian);
      } catch (err) {
        this.problem = (err as Error).message;
      }
    }
    // Not fsynced here: the store syncs it once it knows the content is new (a re-sent duplicate
    // costs no fsync at all).
    await this.file!.close();
    this.file = undefined;
    this.resultValue = {
      tempPath: this.tempPath,
      contentHash: this.hash.digest('hex'),
      size: this.size,
      ...(header ? { header } : {}),
      ...(this.problem ? { problem: this.problem } : {}),
    };
  }
}
