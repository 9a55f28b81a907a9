// StowClient against scripted loopback servers: what goes on the wire, what each kind of answer
// (or silence) turns into, TLS verification and mutual TLS, QIDO paging.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StowClient } from '../../../../shared/dicomweb/stow-client.ts';
import type { StowClientOptions, StowInstance } from '../../../../shared/dicomweb/types.ts';
import { daikonSeries } from '../../../helpers/data.ts';
import { createTestPki, type TestPki } from '../../../helpers/pki.ts';
import { boundaryOf, parseMultipart } from './multipart-parse.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: () => Promise<Buffer>) => void | Promise<void>;

const servers: Server[] = [];
const clients: StowClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function listen(server: Server, handler: Handler): Promise<number> {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const body = async (): Promise<Buffer> => {
      const chunks: Buffer[] = [];
      for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
      return Buffer.concat(chunks);
    };
    void handler(req, res, body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function httpServer(handler: Handler): Promise<string> {
  return `http://127.0.0.1:${await listen(createHttpServer(), handler)}/dicom-web`;
}

function client(opts: StowClientOptions): StowClient {
  const c = new StowClient(opts);
  clients.push(c);
  return c;
}

const series = daikonSeries();
const toInstance = (f: (typeof series)[number]): StowInstance => ({ sopInstanceUid: f.sopInstance ?? '', sopClassUid: f.sopClass ?? '', path: f.file, size: f.size });
const small = series.slice(1, 4).map(toInstance);

const outcomes = (r: { results: Array<{ outcome: string }> }) => r.results.map((x) => x.outcome);

function storedJson(uids: string[]): string {
  return JSON.stringify({ '00081199': { vr: 'SQ', Value: uids.map((u) => ({ '00081155': { vr: 'UI', Value: [u] } })) } });
}

describe('StowClient.store on the wire', () => {
  it('POSTs multipart/related application/dicom with exact length, Accept, bearer auth; parses JSON', async () => {
    let seen: { url?: string; headers?: IncomingMessage['headers']; body?: Buffer } = {};
    const base = await httpServer(async (req, res, body) => {
      seen = { url: req.url ?? '', headers: req.headers, body: await body() };
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(storedJson(small.map((i) => i.sopInstanceUid)));
    });
    const r = await client({ baseUrl: base + '/', auth: { kind: 'bearer', token: 't0k' } }).store(small);
    expect(r.results.map((x) => x.outcome)).toEqual(['stored', 'stored', 'stored']);
    expect(seen.url).toBe('/dicom-web/studies');
    expect(seen.headers?.authorization).toBe('Bearer t0k');
    expect(seen.headers?.accept).toBe('application/dicom+json, application/dicom+xml;q=0.9');
    expect(seen.headers?.['content-type']).toMatch(/^multipart\/related; type="application\/dicom"; boundary=/);
    expect(Number(seen.headers?.['content-length'])).toBe(seen.body?.length);
    const parts = parseMultipart(seen.body ?? Buffer.alloc(0), boundaryOf(seen.headers?.['content-type'] ?? ''));
    for (const [i, p] of parts.entries()) expect(p.content.equals(await readFile(small[i]?.path ?? ''))).toBe(true);
  });

  it('targets /studies/{uid}, sends basic auth, reads an XML answer without Content-Type', async () => {
    let seen: IncomingMessage | undefined;
    const uid = small[0]?.sopInstanceUid ?? '';
    const base = await httpServer(async (req, res, body) => {
      seen = req;
      await body();
      res.writeHead(202).end(
        '<?xml version="1.0"?><NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">' +
          `<DicomAttribute tag="00081199" vr="SQ"><Item number="1"><DicomAttribute tag="00081155" vr="UI"><Value number="1">${uid}</Value></DicomAttribute></Item></DicomAttribute>` +
          '</NativeDicomModel>',
      );
    });
    const r = await client({ baseUrl: base, auth: { kind: 'basic', username: 'box', password: 'p:w' } }).store(small.slice(0, 2), { studyInstanceUid: '1.2.3' });
    expect(seen?.url).toBe('/dicom-web/studies/1.2.3');
    expect(seen?.headers.authorization).toBe(`Basic ${Buffer.from('box:p:w').toString('base64')}`);
    expect(r.httpStatus).toBe(202);
    expect(r.results.map((x) => [x.outcome, x.retryable])).toEqual([
      ['stored', false],
      ['failed', true],
    ]);
    expect(r.results[1]?.detail).toBe('not confirmed by receiver (HTTP 202)');
  });

  it('reads a body whose Content-Type names the other encoding', async () => {
    const uid = small[0]?.sopInstanceUid ?? '';
    const base = await httpServer(async (_req, res, body) => {
      await body();
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(
        `<NativeDicomModel><DicomAttribute tag="00081199" vr="SQ"><Item number="1"><DicomAttribute tag="00081155" vr="UI"><Value number="1">${uid}</Value></DicomAttribute></Item></DicomAttribute></NativeDicomModel>`,
      );
    });
    const r = await client({ baseUrl: base }).store(small.slice(0, 1));
    expect(r.results[0]).toEqual({ sopInstanceUid: uid, outcome: 'stored', retryable: false });
  });

  it('503 with Retry-After and a text body: all retryable, retryAfterMs set', async () => {
    const base = await httpServer(async (_req, res, body) => {
      await body();
      res.writeHead(503, { 'retry-after': '7', 'content-type': 'text/plain' }).end('maintenance');
    });
    const r = await client({ baseUrl: base }).store(small);
    expect(r).toMatchObject({ httpStatus: 503, retryAfterMs: 7000 });
    for (const x of r.results) expect(x).toMatchObject({ outcome: 'failed', retryable: true });
    expect(r.results[0]?.detail).toMatch(/HTTP 503: receiver error; response body is not a STOW response: maintenance/);
  });

  it('413 sent before the body is read (5 MB batch) returns promptly', async () => {
    const base = await httpServer((_req, res) => {
      res.writeHead(413, { connection: 'close' }).end();
    });
    const r = await client({ baseUrl: base, timeoutMs: 5000 }).store(series.map(toInstance));
    expect(r.httpStatus).toBe(413);
    expect(r.results).toHaveLength(20);
    expect(r.results.every((x) => x.retryable && x.detail?.startsWith('HTTP 413: request too large'))).toBe(true);
  });

  it('network failures become retryable results, never a throw', async () => {
    const dead = await httpServer(() => undefined);
    const port = new URL(dead).port;
    servers.splice(0).forEach((s) => s.close());
    const refused = await client({ baseUrl: `http://127.0.0.1:${port}/dicom-web` }).store(small);
    expect(refused.httpStatus).toBe(0);
    expect(refused.results.every((x) => x.outcome === 'failed' && x.retryable && /network error: .*ECONNREFUSED/.test(x.detail ?? ''))).toBe(true);

    const cut = await httpServer((req) => {
      req.once('data', () => req.socket.destroy());
    });
    const r = await client({ baseUrl: cut }).store(series.map(toInstance));
    expect(r.results.every((x) => x.outcome === 'failed' && x.retryable && /network error/.test(x.detail ?? ''))).toBe(true);
  });

  it('a silent receiver times out (inactivity), an abort is reported, both retryable', async () => {
    const base = await httpServer(async (_req, _res, body) => {
      await body(); // read everything, never answer
    });
    const started = performance.now();
    const r = await client({ baseUrl: base, timeoutMs: 300 }).store(small);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(r.results.every((x) => x.retryable && /timeout error: .*no activity for 300 ms/.test(x.detail ?? ''))).toBe(true);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const a = await client({ baseUrl: base, timeoutMs: 10_000 }).store(small, { signal: ac.signal });
    expect(a.results.every((x) => x.retryable && /aborted by caller/.test(x.detail ?? ''))).toBe(true);
  });

  it('resends once, on a new connection, when a kept-alive socket turns out closed on reuse', async () => {
    const perSocket = new WeakMap<object, number>();
    let connections = 0;
    let requests = 0;
    const base = await httpServer(async (req, res, body) => {
      requests++;
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      if (n === 1) connections++;
      // What a receiver's idle-timeout close looks like when it crosses our next request.
      if (n > 1) return void req.socket.destroy();
      await body();
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(storedJson(small.map((i) => i.sopInstanceUid)));
    });
    const c = client({ baseUrl: base });
    expect(outcomes(await c.store(small))).toEqual(['stored', 'stored', 'stored']);
    expect(outcomes(await c.store(small))).toEqual(['stored', 'stored', 'stored']);
    // First request, the second on the reused socket (dropped), its resend on a new one.
    expect(requests).toBe(3);
    expect(connections).toBe(2);
  });

  it('a missing or resized local file fails alone (permanent), the rest still go, order kept', async () => {
    const base = await httpServer(async (req, res, body) => {
      const parts = parseMultipart(await body(), boundaryOf(req.headers['content-type'] ?? ''));
      expect(parts).toHaveLength(1);
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(storedJson([small[1]?.sopInstanceUid ?? '']));
    });
    const batch = [{ ...(small[0] as StowInstance), path: '/nonexistent/x.dcm' }, small[1] as StowInstance, { ...(small[2] as StowInstance), size: 12 }];
    const r = await client({ baseUrl: base }).store(batch);
    expect(r.results.map((x) => [x.sopInstanceUid, x.outcome, x.retryable])).toEqual([
      [batch[0]?.sopInstanceUid, 'failed', false],
      [batch[1]?.sopInstanceUid, 'stored', false],
      [batch[2]?.sopInstanceUid, 'failed', false],
    ]);
    expect(r.results[0]?.detail).toMatch(/local file \/nonexistent\/x.dcm unreadable/);
    expect(r.results[2]?.detail).toMatch(/holds \d+ bytes, 12 expected/);
  });

  it('passes the body through the throttle it is given', async () => {
    const base = await httpServer(async (_req, res, body) => {
      await body();
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(storedJson(small.map((i) => i.sopInstanceUid)));
    });
    let counted = 0;
    const throttle = (b: Readable): Readable => {
      const p = new PassThrough();
      p.on('data', (c: Buffer) => (counted += c.length));
      return b.pipe(p);
    };
    const r = await client({ baseUrl: base }).store(small, { throttle });
    expect(r.httpStatus).toBe(200);
    expect(counted).toBeGreaterThan(small.reduce((n, i) => n + i.size, 0));
  });

  it('refuses an empty batch and a basic-auth user with a colon', async () => {
    await expect(client({ baseUrl: 'http://127.0.0.1:1/x' }).store([])).rejects.toThrow(/no instances/);
    expect(() => new StowClient({ baseUrl: 'http://127.0.0.1:1/x', auth: { kind: 'basic', username: 'a:b', password: '' } })).toThrow(/must not contain ":"/);
    expect(() => new StowClient({ baseUrl: 'ftp://127.0.0.1/x' })).toThrow(/only http and https/);
  });
});

describe('StowClient over TLS', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = createTestPki();
  });
  afterAll(() => pki?.remove());

  async function tlsServer(requestCert: boolean): Promise<string> {
    const read = (p: string) => readFileSync(p, 'utf8');
    const server = createHttpsServer({ cert: read(pki.server.cert), key: read(pki.server.key), ca: read(pki.ca.cert), requestCert, rejectUnauthorized: requestCert });
    const port = await listen(server, async (_req, res, body) => {
      await body();
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(storedJson(small.map((i) => i.sopInstanceUid)));
    });
    return `https://127.0.0.1:${port}/dicom-web`;
  }
  const pem = (p: string) => readFileSync(p, 'utf8');

  it('verifies the server by default; a custom CA makes it pass; verification off is explicit', async () => {
    const base = await tlsServer(false);
    const untrusted = await client({ baseUrl: base }).store(small);
    expect(untrusted.results.every((x) => x.retryable && /network error: .*(self-signed|unable to (get|verify))/i.test(x.detail ?? ''))).toBe(true);
    const trusted = await client({ baseUrl: base, ca: pem(pki.ca.cert) }).store(small);
    expect(trusted.results.every((x) => x.outcome === 'stored')).toBe(true);
    const insecure = await client({ baseUrl: base, rejectUnauthorized: false }).store(small);
    expect(insecure.results.every((x) => x.outcome === 'stored')).toBe(true);
  });

  it('mutual TLS: the client certificate gets in, no certificate does not', async () => {
    const base = await tlsServer(true);
    const withCert = await client({ baseUrl: base, ca: pem(pki.ca.cert), cert: pem(pki.client.cert), key: pem(pki.client.key) }).store(small);
    expect(withCert.results.every((x) => x.outcome === 'stored')).toBe(true);
    const without = await client({ baseUrl: base, ca: pem(pki.ca.cert) }).store(small);
    expect(without.results.every((x) => x.outcome === 'failed' && x.retryable)).toBe(true);
  });
});

describe('StowClient.countInstances (QIDO-RS)', () => {
  const dataset = (i: number) => ({ '00080018': { vr: 'UI', Value: [`1.2.${i}`] } });

  it('pages with limit/offset and counts distinct instances', async () => {
    const urls: string[] = [];
    const base = await httpServer((req, res) => {
      urls.push(req.url ?? '');
      const q = new URL(req.url ?? '', 'http://x').searchParams;
      const offset = Number(q.get('offset'));
      const limit = Number(q.get('limit'));
      const page = Array.from({ length: Math.max(0, Math.min(limit, 2500 - offset)) }, (_, k) => dataset(offset + k));
      res.writeHead(200, { 'content-type': 'application/dicom+json' }).end(JSON.stringify(page));
    });
    expect(await client({ baseUrl: base }).countInstances('1.2.3')).toBe(2500);
    expect(urls[0]).toBe('/dicom-web/studies/1.2.3/instances?limit=1000&offset=0');
    expect(urls).toHaveLength(3);
  });

  it('stops when a receiver ignores offset, and reads 204/404/empty as zero', async () => {
    let status = 200;
    const base = await httpServer((_req, res) => {
      if (status !== 200) return void res.writeHead(status).end();
      res.writeHead(200).end(JSON.stringify(Array.from({ length: 1000 }, (_, k) => dataset(k))));
    });
    const c = client({ baseUrl: base });
    expect(await c.countInstances('1.2.3')).toBe(1000);
    status = 204;
    expect(await c.countInstances('1.2.3')).toBe(0);
    status = 404;
    expect(await c.countInstances('1.2.3')).toBe(0);
    status = 500;
    await expect(c.countInstances('1.2.3')).rejects.toThrow(/QIDO-RS GET http:\/\/127.0.0.1:\d+\/dicom-web\/studies\/1.2.3\/instances\?limit=1000&offset=0: HTTP 500/);
  });
});
