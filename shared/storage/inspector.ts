// Looks at a dataset as its bytes go by: sha256 of the bytes, structural walk, indexed header.
// Shared by the object writer (receive path) and recovery (re-reading stored files).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInflateRaw, type InflateRaw } from 'node:zlib';
import { headerFromWalk, HEADER_TAGS, parseFileMeta } from '../dicom/header.ts';
import { encodingOf } from '../dicom/syntax.ts';
import { DatasetWalker } from '../dicom/walker.ts';
import type { DicomHeader } from '../types/store.ts';

export interface Inspection {
  /** sha256 (hex) of the dataset bytes as given (deflated ones stay deflated). */
  contentHash: string;
  /** Present when the dataset is structurally whole and carries the required UIDs. */
  header?: DicomHeader;
  /** Why the dataset cannot be accepted, when it cannot. */
  problem?: string;
}

export class DatasetInspector {
  private readonly hash = createHash('sha256');
  private readonly walker: DatasetWalker;
  private readonly transferSyntaxUid: string;
  private readonly littleEndian: boolean;
  private readonly inflater: InflateRaw | undefined;
  private inflated: Promise<void> = Promise.resolve();
  private problem: string | undefined;

  constructor(transferSyntaxUid: string) {
    this.transferSyntaxUid = transferSyntaxUid;
    const enc = encodingOf(transferSyntaxUid);
    this.littleEndian = enc.littleEndian;
    this.walker = new DatasetWalker({ explicitVr: enc.explicitVr, littleEndian: enc.littleEndian, collect: HEADER_TAGS });
    if (enc.deflated) {
      // Only the walk sees inflated bytes; the stored file keeps the deflated bytes as received.
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

  push(chunk: Buffer): void {
    this.hash.update(chunk);
    if (this.inflater) this.inflater.write(chunk);
    else this.walk(chunk);
  }

  async end(): Promise<Inspection> {
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
    return { contentHash: this.hash.digest('hex'), ...(header ? { header } : {}), ...(this.problem ? { problem: this.problem } : {}) };
  }

  /** Stops the inflater of an object that will never end. */
  destroy(): void {
    this.inflater?.destroy();
  }

  private walk(chunk: Buffer): void {
    if (this.problem) return;
    try {
      this.walker.push(chunk);
    } catch (err) {
      this.problem = (err as Error).message;
    }
  }
}

/** Inspects a stored Part 10 file (recovery, integrity checks). */
export async function inspectFile(path: string): Promise<Inspection & { size: number }> {
  const fh = await open(path, 'r');
  let head: Buffer;
  let size: number;
  try {
    size = (await fh.stat()).size;
    head = Buffer.alloc(Math.min(size, 64 * 1024));
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  const meta = parseFileMeta(head);
  const inspector = new DatasetInspector(meta.transferSyntaxUid);
  for await (const chunk of createReadStream(path, { start: meta.datasetOffset, highWaterMark: 1 << 20 })) inspector.push(chunk as Buffer);
  return { ...(await inspector.end()), size };
}
