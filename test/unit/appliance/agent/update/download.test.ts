// The resumable downloader: the pure Range decisions, then real downloads over mutual TLS from a
// small HTTPS server that can cut the connection, ignore Range or serve other bytes.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DownloadError, downloadBundle, interpretResponse, resumePlan, type DownloadSpec } from '../../../../../appliance/agent/update/download.ts';
import { createTestPki, type TestPki } from '../../../../helpers/pki.ts';

describe('Range resume decisions', () => {
  it('fetches the rest, checks a complete part, drops an oversized one', () => {
    expect(resumePlan(0, 100)).toEqual({ kind: 'fetch', from: 0 });
    expect(resumePlan(40, 100)).toEqual({ kind: 'fetch', from: 40 });
    expect(resumePlan(100, 100)).toEqual({ kind: 'check-complete' });
    expect(resumePlan(101, 100)).toEqual({ kind: 'discard' });
  });

  it('appends only the exact range of a file of the offered size; 200 starts over', () => {
    expect(interpretResponse(206, { 'content-range': 'bytes 40-99/100' }, 40, 100)).toEqual({ kind: 'append' });
    expect(interpretResponse(200, { 'content-length': '100' }, 40, 100)).toEqual({ kind: 'restart' });
    expect(interpretResponse(200, { 'content-length': '90' }, 0, 100)).toMatchObject({ kind: 'error', transient: false });
    expect(interpretResponse(206, { 'content-range': 'bytes 50-99/100' }, 40, 100)).toMatchObject({ kind: 'error', transient: true });
    expect(interpretResponse(206, { 'content-range': 'bytes 40-99/120' }, 40, 100)).toMatchObject({ kind: 'error', transient: false });
    expect(interpretResponse(206, {}, 40, 100)).toMatchObject({ kind: 'error', transient: true });
    expect(interpretResponse(416, {}, 40, 100)).toMatchObject({ kind: 'error', transient: true });
    expect(interpretResponse(404, {}, 0, 100)).toMatchObject({ kind: 'error', transient: false, message: 'HTTP 404' });
    expect(interpretResponse(503, {}, 0, 100)).toMatchObject({ kind: 'error', transient: true });
  });
});

/** The helper's PKI hands out file paths. */
const pem = (path: string): string => readFileSync(path, 'utf8');

interface Mode {
  /** Destroy the socket after this many body bytes of the next response. */
  cutAfter?: number;
  ignoreRange?: boolean;
  /** Serve these bytes instead. */
  body?: Buffer;
}

describe('downloadBundle over mutual TLS', () => {
  let pki: TestPki;
  let server: Server;
  let url: string;
  let work: string;
  const bundle = randomBytes(300_000);
  const sha256 = createHash('sha256').update(bundle).digest('hex');
  let mode: Mode = {};
  const ranges: Array<string | undefined> = [];

  beforeAll(async () => {
    pki = createTestPki();
    work = mkdtempSync(join(tmpdir(), 'mbox-dl-'));
    server = createServer({ key: pem(pki.server.key), cert: pem(pki.server.cert), ca: pem(pki.ca.cert), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      ranges.push(req.headers.range);
      const body = mode.body ?? bundle;
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m && !mode.ignoreRange ? Number(m[1]) : 0;
      const part = body.subarray(start);
      if (start > 0) res.writeHead(206, { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'content-length': part.length });
      else res.writeHead(200, { 'content-length': body.length });
      if (mode.cutAfter !== undefined) {
        const n = mode.cutAfter;
        mode = { ...mode, cutAfter: undefined };
        res.write(part.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.end(part);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/bundle`;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    pki.remove();
    rmSync(work, { recursive: true, force: true });
  });

  const spec = (file: string, over: Partial<DownloadSpec> = {}): DownloadSpec => ({
    url,
    size: bundle.length,
    sha256,
    file: join(work, file),
    tls: { key: pem(pki.client.key), cert: pem(pki.client.cert), ca: pem(pki.ca.cert) },
    ...over,
  });

  it('resumes a cut download from the kept part with Range, and the result matches', async () => {
    ranges.length = 0;
    mode = { cutAfter: 100_000 };
    const err = await downloadBundle(spec('a.mbx')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).kind).toBe('transient');
    const kept = statSync(join(work, 'a.mbx.part')).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(100_000);

    const progress: number[] = [];
    const r = await downloadBundle(spec('a.mbx', { onProgress: (b) => progress.push(b) }));
    expect(r).toEqual({ file: join(work, 'a.mbx'), fetched: bundle.length - kept, resumedFrom: kept });
    expect(ranges).toEqual([undefined, `bytes=${kept}-`]);
    expect(readFileSync(join(work, 'a.mbx')).equals(bundle)).toBe(true);
    expect(existsSync(join(work, 'a.mbx.part'))).toBe(false);
    expect(progress.at(-1)).toBe(bundle.length);
    // Done already: no request at all.
    expect((await downloadBundle(spec('a.mbx'))).fetched).toBe(0);
    expect(ranges).toHaveLength(2);
  });

  it('starts over when the server ignores Range (200), keeping nothing of the old part', async () => {
    mode = { cutAfter: 50_000 };
    await downloadBundle(spec('b.mbx')).catch(() => undefined);
    mode = { ignoreRange: true };
    const r = await downloadBundle(spec('b.mbx'));
    expect(r.resumedFrom).toBe(0);
    expect(r.fetched).toBe(bundle.length);
    expect(readFileSync(join(work, 'b.mbx')).equals(bundle)).toBe(true);
  });

  it('refuses bytes that do not match the offer and keeps nothing of them', async () => {
    mode = { body: Buffer.from(bundle).fill(7, 1000, 1001) };
    const err = (await downloadBundle(spec('c.mbx')).catch((e: unknown) => e)) as DownloadError;
    expect(err.kind).toBe('fatal');
    expect(err.message).toMatch(/sha256 of the downloaded bundle is [0-9a-f]{64}, the offer says/);
    expect(existsSync(join(work, 'c.mbx.part'))).toBe(false);
    expect(existsSync(join(work, 'c.mbx'))).toBe(false);
  });

  it('retries from zero when a kept part was garbled (a power cut), and refuses a server with another size', async () => {
    mode = {};
    writeFileSync(join(work, 'd.mbx.part'), Buffer.alloc(1000, 1));
    const err = (await downloadBundle(spec('d.mbx')).catch((e: unknown) => e)) as DownloadError;
    expect(err.kind).toBe('transient');
    expect((await downloadBundle(spec('d.mbx'))).resumedFrom).toBe(0);
    expect(readFileSync(join(work, 'd.mbx')).equals(bundle)).toBe(true);

    const wrongSize = (await downloadBundle(spec('e.mbx', { size: bundle.length + 5 })).catch((e: unknown) => e)) as DownloadError;
    expect(wrongSize.kind).toBe('fatal');
    expect(wrongSize.message).toMatch(/sends 300000 bytes, the offer says 300005/);
  });

  it('does not talk to a server without the pinned CA, nor without a client certificate', async () => {
    const untrusted = (await downloadBundle(spec('f.mbx', { tls: { key: pem(pki.client.key), cert: pem(pki.client.cert), ca: pem(pki.rogueCa.cert) } })).catch((e: unknown) => e)) as DownloadError;
    expect(untrusted).toBeInstanceOf(DownloadError);
    const rogue = (await downloadBundle(spec('f.mbx', { tls: { key: pem(pki.rogueClient.key), cert: pem(pki.rogueClient.cert), ca: pem(pki.ca.cert) } })).catch((e: unknown) => e)) as DownloadError;
    expect(rogue).toBeInstanceOf(DownloadError);
    expect(existsSync(join(work, 'f.mbx'))).toBe(false);
  });
});
