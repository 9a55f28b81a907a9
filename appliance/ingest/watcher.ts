// The watch folder: modalities that export files (SMB share, USB) drop them here. Polling, not
// inotify, because network shares do not deliver change events; a file is taken once it has
// stopped changing for the settle time (a file renamed in already has an old mtime). The original
// is removed only after the store holds it durably, so a crash at any point loses nothing.
import { closeSync, createReadStream } from 'node:fs';
import { open, readdir, stat, unlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseFileMeta } from '../../shared/dicom/header.ts';
import type { InstanceSource } from '../../shared/types/store.ts';
import { ObjectWriter } from '../../shared/storage/object-writer.ts';
import { refuse, storeWritten, type IngestContext } from './intake.ts';

const HEAD_BYTES = 64 * 1024;
/** Names that writers use while a file is still being written, and our own markers. */
const IN_PROGRESS = /(^\.|\.(part|partial|tmp|crdownload|filepart)$|~$)/i;

export interface WatcherOptions {
  dir: string;
  settleMs: number;
  intervalMs: number;
  /** How long a file that looks cut off is waited for before it counts as broken. */
  giveUpMs: number;
}

interface Seen {
  size: number;
  mtimeMs: number;
}

export class FolderWatcher {
  private readonly opts: WatcherOptions;
  private readonly ctx: IngestContext;
  private readonly seen = new Map<string, Seen>();
  private readonly failed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private stopped = false;

  constructor(opts: WatcherOptions, ctx: IngestContext) {
    this.opts = opts;
    this.ctx = ctx;
  }

  async start(): Promise<void> {
    const s = await stat(this.opts.dir).catch(() => undefined);
    if (!s?.isDirectory()) throw new Error(`watch folder ${this.opts.dir} is not a directory`);
    this.ctx.log.info({ dir: this.opts.dir, settleMs: this.opts.settleMs }, 'watching folder');
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.scanning;
  }

  /** Runs one scan now and waits for it: for tests and for an operator's "scan now". */
  async scanNow(): Promise<void> {
    await this.scanning;
    this.scanning = this.scan();
    await this.scanning;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.scanning = this.scan().finally(() => this.schedule(this.opts.intervalMs));
    }, delay);
  }

  private async scan(): Promise<void> {
    const present = new Set<string>();
    const stable: string[] = [];
    const now = Date.now();
    for await (const path of walk(this.opts.dir)) {
      present.add(path);
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile()) continue;
      const before = this.seen.get(path);
      this.seen.set(path, { size: s.size, mtimeMs: s.mtimeMs });
      const unchanged = !before || (before.size === s.size && before.mtimeMs === s.mtimeMs);
      if (unchanged && now - s.mtimeMs >= this.opts.settleMs && !this.failed.has(path)) stable.push(path);
    }
    for (const path of this.seen.keys()) if (!present.has(path)) this.seen.delete(path);
    for (const path of this.failed) if (!present.has(path)) this.failed.delete(path);
    this.ctx.metrics.watchPending.set(this.seen.size);
    for (const path of stable) {
      // A full disk pauses the watcher; files wait where they are.
      if (this.stopped || !this.ctx.disk.ok) return;
      await this.ingest(path);
    }
  }

  private async ingest(path: string): Promise<void> {
    const source: InstanceSource = { kind: 'watch', path: relative(this.opts.dir, path) };
    const log = this.ctx.log.child({ file: path });
    let head: Buffer;
    try {
      head = await readHead(path);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read watched file yet');
      return;
    }
    let meta;
    try {
      meta = parseFileMeta(head);
    } catch (err) {
      // Not DICOM at all: the original itself moves to quarantine (or stays, if it cannot).
      const size = (await stat(path).catch(() => undefined))?.size ?? head.length;
      if (await refuse(this.ctx, path, (err as Error).message, source, undefined, size)) this.seen.delete(path);
      else this.retryLater(path);
      return;
    }
    let writer: ObjectWriter | undefined;
    try {
      writer = new ObjectWriter({
        tempPath: this.ctx.store.newTempPath(),
        transferSyntaxUid: meta.transferSyntaxUid,
        prefix: head.subarray(0, meta.datasetOffset),
      });
      const modified = (await stat(path)).mtimeMs;
      await pipeline(createReadStream(path, { start: meta.datasetOffset, highWaterMark: 1024 * 1024 }), writer);
      // A writer that stalls longer than the settle time leaves a file that looks truncated: wait
      // for it to grow rather than quarantine half an image.
      if (writer.result.problem?.startsWith('truncated') && Date.now() - modified < this.opts.giveUpMs) {
        closeSync(writer.result.fd);
        await unlink(writer.result.tempPath);
        this.retryLater(path, this.opts.settleMs);
        log.info({ problem: writer.result.problem }, 'watched file looks incomplete; waiting for the writer');
        return;
      }
      // The dataset, not the meta wrapper, says what the object is (tools that edit datasets often
      // leave a stale MediaStorageSOPInstanceUID behind), so there is no claim to check here.
      const verdict = await storeWritten(this.ctx, writer.result, source);
      if (verdict.status !== 0 && !verdict.quarantined) {
        this.retryLater(path);
        return;
      }
      if (verdict.status === 0) log.info({ outcome: verdict.outcome }, 'watched file stored');
      else log.warn({ status: verdict.status, reason: verdict.comment, quarantined: verdict.quarantined }, 'watched file quarantined');
      await this.removeOriginal(path);
    } catch (err) {
      // Not stored (disk full, file vanished, I/O error): the original stays for the next scan.
      writer?.destroy();
      this.retryLater(path);
      log.error({ err: (err as Error).message }, 'watched file not stored; will retry');
    }
  }

  private retryLater(path: string, afterMs = 30_000): void {
    this.failed.add(path);
    setTimeout(() => this.failed.delete(path), afterMs).unref();
  }

  private async removeOriginal(path: string): Promise<void> {
    this.seen.delete(path);
    await unlink(path).catch((err: Error) => this.ctx.log.warn({ err: err.message, path }, 'could not remove ingested original'));
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (IN_PROGRESS.test(e.name)) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) yield* walk(full);
    else if (e.isFile()) yield full;
  }
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(buf, 0, HEAD_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
