// A small HTTP(S) exchange on node:http/https rather than fetch: a streamed request body with an
// exact Content-Length, custom CA plus client certificate on one keep-alive agent, and a socket
// inactivity timeout are all first-class here, while fetch needs an undici dispatcher and
// `duplex: 'half'` for the same, and hides the socket.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { getCACertificates, rootCertificates } from 'node:tls';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import type { StowAuth, StowClientOptions } from './types.ts';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Why no response came back; `kind` lets callers word their detail without parsing messages. */
export class HttpFailure extends Error {
  readonly kind: 'network' | 'timeout' | 'aborted' | 'local';
  readonly code: string | undefined;
  constructor(kind: HttpFailure['kind'], message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'HttpFailure';
    this.kind = kind;
    this.code = (cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

export interface SendOptions {
  method: 'GET' | 'POST';
  url: URL;
  agent: HttpAgent;
  headers: OutgoingHttpHeaders;
  /** Socket inactivity limit: connecting, sending or waiting, no byte for this long fails the request. */
  timeoutMs: number;
  /** Makes a fresh body per attempt, so a retry on a stale keep-alive socket can resend it. */
  body?: () => Readable;
  signal?: AbortSignal;
  maxResponseBytes: number;
}

export function createAgent(url: URL, opts: StowClientOptions): HttpAgent {
  // Keep-alive spares a TLS handshake per batch; the agent's sockets all share one TLS identity.
  const common = { keepAlive: true, maxSockets: 8 };
  if (url.protocol === 'http:') return new HttpAgent(common);
  if (url.protocol !== 'https:') throw new Error(`DICOMweb base URL ${url.href}: only http and https are supported`);
  return new HttpsAgent({
    ...common,
    // Node's `ca` replaces the trust store, so the default set is kept alongside the extra CA.
    ...(opts.ca ? { ca: [...defaultCas(), opts.ca] } : {}),
    ...(opts.cert ? { cert: opts.cert } : {}),
    ...(opts.key ? { key: opts.key } : {}),
    rejectUnauthorized: opts.rejectUnauthorized !== false,
  });
}

function defaultCas(): string[] {
  // 'default' honours --use-system-ca / NODE_EXTRA_CA_CERTS where set; it exists from Node 22.15.
  return typeof getCACertificates === 'function' ? getCACertificates('default') : [...rootCertificates];
}

export function authHeader(auth: StowAuth | undefined): string | undefined {
  if (!auth || auth.kind === 'none') return undefined;
  if (auth.kind === 'bearer') return `Bearer ${auth.token}`;
  // RFC 7617: the user-id cannot carry a colon, the password may.
  if (auth.username.includes(':')) throw new Error('basic auth username must not contain ":"');
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
}

const RETRY_ON_STALE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export async function send(opts: SendOptions): Promise<HttpResponse> {
  try {
    return await attempt(opts);
  } catch (err) {
    // A keep-alive socket the server closed while idle fails at once on reuse; Node's docs advise
    // one retry on a new connection. No answer came, and STOW of the same instances is idempotent,
    // so resending is safe.
    if (err instanceof StaleSocket) return attempt(opts);
    throw err;
  }
}

class StaleSocket extends Error {}

function attempt(opts: SendOptions): Promise<HttpResponse> {
  const { url, method } = opts;
  const what = `${method} ${url.href}`;
  return new Promise<HttpResponse>((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const body = opts.body?.();
    let responded = false;
    let settled = false;
    let localError: Error | undefined;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      body?.destroy();
      fn();
    };
    const req = request(url, { method, agent: opts.agent, headers: opts.headers, timeout: opts.timeoutMs, signal: opts.signal });
    req.on('timeout', () => req.destroy(new HttpFailure('timeout', `${what}: no activity for ${opts.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // After the answer arrived, a receiver that stops reading our body and closes is not a failure.
      if (responded) return;
      if (err instanceof HttpFailure) return finish(() => reject(err));
      if (localError) return finish(() => reject(new HttpFailure('local', `${what}: reading the body failed: ${localError?.message}`, localError)));
      if (opts.signal?.aborted || err.name === 'AbortError') return finish(() => reject(new HttpFailure('aborted', `${what}: aborted by caller`, err)));
      if (req.reusedSocket && err.code && RETRY_ON_STALE.has(err.code)) return finish(() => reject(new StaleSocket(err.message)));
      finish(() => reject(new HttpFailure('network', `${what}: ${err.code ?? err.name}: ${err.message}`, err)));
    });
    req.on('response', (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxResponseBytes) {
          res.destroy();
          req.destroy();
          finish(() => reject(new HttpFailure('network', `${what}: response body over ${opts.maxResponseBytes} bytes; abandoned`)));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(() => reject(new HttpFailure('network', `${what}: response cut short: ${err.message}`, err))));
      res.on('close', () => {
        if (!res.complete) finish(() => reject(new HttpFailure('network', `${what}: connection closed before the response ended`)));
      });
      res.on('end', () => {
        let decoded: Buffer;
        try {
          decoded = decode(Buffer.concat(chunks), res.headers['content-encoding'], opts.maxResponseBytes);
        } catch (err) {
          finish(() => reject(new HttpFailure('network', `${what}: undecodable response body: ${(err as Error).message}`, err)));
          return;
        }
        // An early answer (401, 413) can come while the body is still going out; stop sending it.
        if (!req.writableFinished) req.destroy();
        finish(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: decoded }));
      });
    });
    if (!body) {
      req.end();
      return;
    }
    body.on('error', (err) => {
      localError = err;
      req.destroy(err);
    });
    body.pipe(req);
  });
}

function decode(body: Buffer, encoding: string | undefined, max: number): Buffer {
  const enc = (encoding ?? 'identity').trim().toLowerCase();
  const limit = { maxOutputLength: max };
  if (enc === 'identity' || body.length === 0) return body;
  if (enc === 'gzip' || enc === 'x-gzip') return gunzipSync(body, limit);
  if (enc === 'deflate') return inflateSync(body, limit);
  if (enc === 'br') return brotliDecompressSync(body, limit);
  throw new Error(`unsupported Content-Encoding ${enc}`);
}
