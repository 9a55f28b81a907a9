// Resumable bundle download: <downloads>/<version>.part grows across cuts and restarts (a Range
// request asks for the rest; a server that ignores Range makes it start over), the sha256 runs over
// the bytes as they land (the kept part is hashed once on resume), and only a file whose size and
// sha256 match the offer becomes <version>.mbx. Mutual TLS with the device certificate.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { fsyncPath } from '../../../shared/storage/fsync.ts';

export class DownloadError extends Error {
  override name = 'DownloadError';
  /** 'transient': worth retrying (cut, timeout, 5xx); 'fatal': the offer itself is wrong. */
  readonly kind: 'transient' | 'fatal';
  constructor(kind: 'transient' | 'fatal', message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface DownloadTls {
  key: string;
  cert: string;
  ca: string;
}

export interface DownloadSpec {
  url: string;
  size: number;
  sha256: string;
  /** Where the finished file goes; the partial is `${file}.part`. */
  file: string;
  tls: DownloadTls;
  signal?: AbortSignal;
  /** Bytes on disk so far (resumed bytes included). */
  onProgress?: (bytes: number, total: number) => void;
  timeoutMs?: number;
}

export interface DownloadResult {
  file: string;
  /** Bytes this call fetched over the network (resumes fetch less). */
  fetched: number;
  /** Where this call started: the kept partial's size. */
  resumedFrom: number;
}

/** What to ask for, given what is on disk already. */
export function resumePlan(partSize: number, total: number): { kind: 'fetch'; from: number } | { kind: 'check-complete' } | { kind: 'discard' } {
  if (partSize > total) return { kind: 'discard' };
  if (partSize === total) return { kind: 'check-complete' };
  return { kind: 'fetch', from: partSize };
}

/**
 * How to treat the answer to a request for bytes `from`-: append (206 for exactly that range of
 * a file of the offered size), start over (200: the server sent the whole file), or fail.
 */
export function interpretResponse(
  status: number,
  headers: { 'content-range'?: string | undefined; 'content-length'?: string | undefined },
  from: number,
  total: number,
): { kind: 'append' } | { kind: 'restart' } | { kind: 'error'; transient: boolean; message: string } {
  if (status === 200) {
    const len = headers['content-length'];
    if (len !== undefined && Number(len) !== total) return { kind: 'error', transient: false, message: `the server sends ${len} bytes, the offer says ${total}` };
    return { kind: 'restart' };
  }
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(headers['content-range'] ?? '');
    if (!m) return { kind: 'error', transient: true, message: `206 without a usable Content-Range ('${headers['content-range'] ?? ''}')` };
    const [start, end, size] = [Number(m[1]), Number(m[2]), m[3] === '*' ? NaN : Number(m[3])];
    if (size !== total) return { kind: 'error', transient: false, message: `the server's file has ${m[3]} bytes, the offer says ${total}` };
    if (start !== from || end !== total - 1) return { kind: 'error', transient: true, message: `asked for bytes ${from}-, got ${start}-${end}` };
    return { kind: 'append' };
  }
  if (status === 416) return { kind: 'error', transient: true, message: `range ${from}- not satisfiable (the file changed?)` };
  if (status === 404 || status === 403 || status === 401) return { kind: 'error', transient: false, message: `HTTP ${status}` };
  return { kind: 'error', transient: status === 0 || status >= 500 || status === 429 || status === 408, message: `HTTP ${status}` };
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function hashFile(path: string, h: Hash, signal?: AbortSignal): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) }) as AsyncIterable<Buffer>) h.update(chunk);
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  await hashFile(path, h);
  return h.digest('hex');
}

function get(spec: DownloadSpec, from: number): Promise<IncomingMessage> {
  const options: RequestOptions = {
    method: 'GET',
    key: spec.tls.key,
    cert: spec.tls.cert,
    ca: spec.tls.ca,
    rejectUnauthorized: true,
    agent: false,
    // If-Range: the rest of *this* file only; a replaced file comes whole (200) and we start over.
    headers: { accept: 'application/octet-stream', ...(from > 0 ? { range: `bytes=${from}-`, 'if-range': `"${spec.sha256}"` } : {}) },
    timeout: spec.timeoutMs ?? 30_000,
    ...(spec.signal ? { signal: spec.signal } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = request(spec.url, options, resolve);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${spec.timeoutMs ?? 30_000} ms`)));
    req.on('error', (err) => reject(new DownloadError(spec.signal?.aborted ? 'fatal' : 'transient', `GET ${spec.url}: ${err.message}`)));
    req.end();
  });
}

const FSYNC_EVERY = 8 << 20;

/** Downloads (or finishes downloading) the bundle; throws DownloadError. The partial is kept on a transient error. */
export async function downloadBundle(spec: DownloadSpec): Promise<DownloadResult> {
  const part = `${spec.file}.part`;
  // A finished file from before a restart: trust it only if it still matches.
  const done = await sizeOf(spec.file);
  if (done !== undefined) {
    if (done === spec.size && (await sha256Of(spec.file)) === spec.sha256) return { file: spec.file, fetched: 0, resumedFrom: done };
    await rm(spec.file, { force: true });
  }
  let have = (await sizeOf(part)) ?? 0;
  const plan = resumePlan(have, spec.size);
  if (plan.kind === 'discard') {
    await rm(part, { force: true });
    have = 0;
  } else if (plan.kind === 'check-complete') {
    if ((await sha256Of(part)) === spec.sha256) return finish(part, spec, 0, have);
    await rm(part, { force: true });
    have = 0;
  }

  let resumedFrom = have;
  let hash = createHash('sha256');
  if (have > 0) await hashFile(part, hash, spec.signal);
  const res = await get(spec, have);
  const verdict = interpretResponse(res.statusCode ?? 0, { 'content-range': res.headers['content-range'], 'content-length': res.headers['content-length'] }, have, spec.size);
  if (verdict.kind === 'error') {
    res.resume();
    // A 416 means what we kept does not fit the server's file: drop it and start over next time.
    if (res.statusCode === 416) await rm(part, { force: true });
    throw new DownloadError(verdict.transient ? 'transient' : 'fatal', `GET ${spec.url}: ${verdict.message}`);
  }
  if (verdict.kind === 'restart' && have > 0) {
    have = 0;
    resumedFrom = 0;
    hash = createHash('sha256');
  }

  const fh: FileHandle = await open(part, have > 0 ? 'r+' : 'w', 0o600);
  let fetched = 0;
  let sinceSync = 0;
  try {
    if (have === 0) await fh.truncate(0);
    for await (const chunk of res as AsyncIterable<Buffer>) {
      if (have + chunk.length > spec.size) throw new DownloadError('fatal', `the server sent more than the offered ${spec.size} bytes`);
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off, have + off)).bytesWritten;
      hash.update(chunk);
      have += chunk.length;
      fetched += chunk.length;
      sinceSync += chunk.length;
      // Bounds what a power cut can take back; the final hash catches anything it garbled.
      if (sinceSync >= FSYNC_EVERY) {
        await fh.sync();
        sinceSync = 0;
      }
      spec.onProgress?.(have, spec.size);
    }
    await fh.sync();
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    throw new DownloadError(spec.signal?.aborted ? 'fatal' : 'transient', `download of ${spec.url} cut at ${have} of ${spec.size} bytes: ${(err as Error).message}`);
  } finally {
    await fh.close();
  }
  if (have < spec.size) throw new DownloadError('transient', `download of ${spec.url} ended at ${have} of ${spec.size} bytes`);
  const digest = hash.digest('hex');
  if (digest !== spec.sha256) {
    await rm(part, { force: true });
    // After a resume the kept part may be what went wrong (a power cut garbled its tail): one more
    // try from zero. From zero, the server's file is not the offered one.
    throw new DownloadError(resumedFrom > 0 ? 'transient' : 'fatal', `sha256 of the downloaded bundle is ${digest}, the offer says ${spec.sha256}`);
  }
  return finish(part, spec, fetched, resumedFrom);
}

async function finish(part: string, spec: DownloadSpec, fetched: number, resumedFrom: number): Promise<DownloadResult> {
  await rename(part, spec.file);
  await fsyncPath(dirname(spec.file));
  spec.onProgress?.(spec.size, spec.size);
  return { file: spec.file, fetched, resumedFrom };
}
