// The uplink's DICOMweb client: STOW-RS to store a batch of Part 10 files (PS3.18 §10.5) and a
// QIDO-RS count of a study's instances (§10.6) to reconcile what the receiver holds. store() never
// throws for anything the network or the receiver does; each instance gets a verdict instead.
import { stat } from 'node:fs/promises';
import type { Agent } from 'node:http';
import type { Readable } from 'node:stream';
import { authHeader, createAgent, HttpFailure, send, type HttpResponse } from './http.ts';
import { multipartRelated } from './multipart.ts';
import { parseRetryAfter, resultsFromError, resultsFromExchange, type Exchange } from './stow-outcome.ts';
import { bodyFormat, parseStowResponse } from './stow-response-reader.ts';
import type { StowClientOptions, StowInstance, StowInstanceResult, StowResult } from './types.ts';

export interface StoreOptions {
  /** POST to /studies/{uid}: the receiver then refuses instances of any other study. */
  studyInstanceUid?: string;
  signal?: AbortSignal;
  /** Wraps the request body, e.g. a bandwidth limiter shared by every upload to this destination. */
  throttle?: (body: Readable) => Readable;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
// Ample for the response to a batch of tens of thousands of instances.
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
const ACCEPT_STOW = 'application/dicom+json, application/dicom+xml;q=0.9';
const QIDO_PAGE = 1000;

export class StowClient {
  readonly baseUrl: string;
  readonly #opts: StowClientOptions;
  readonly #agent: Agent;
  readonly #auth: string | undefined;

  constructor(opts: StowClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.baseUrl);
    } catch {
      throw new Error(`DICOMweb base URL ${JSON.stringify(opts.baseUrl)} is not a URL`);
    }
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.#opts = opts;
    this.#agent = createAgent(url, opts);
    this.#auth = authHeader(opts.auth);
  }

  /** Closes pooled connections; in-flight requests fail as network errors. */
  close(): void {
    this.#agent.destroy();
  }

  async store(instances: StowInstance[], opts: StoreOptions = {}): Promise<StowResult> {
    if (instances.length === 0) throw new Error('StowClient.store: no instances to send');
    // A file that vanished or changed size since it was queued would make the request's
    // Content-Length a lie; it fails alone (no receiver can help) and the rest still go.
    const local = await Promise.all(instances.map(checkLocalFile));
    const sendable = instances.filter((_, i) => local[i] === undefined);
    const localFailures = new Map(instances.flatMap((inst, i) => (local[i] ? [[i, local[i]] as const] : [])));
    if (sendable.length === 0) return { httpStatus: 0, results: [...localFailures.values()] };

    const sent = await this.#post(sendable, opts);
    if (localFailures.size === 0) return sent;
    // Put every result back in the caller's order.
    const remote = sent.results[Symbol.iterator]();
    const results = instances.map((_, i) => localFailures.get(i) ?? (remote.next().value as StowInstanceResult));
    return { ...sent, results };
  }

  async #post(instances: StowInstance[], opts: StoreOptions): Promise<StowResult> {
    const body = multipartRelated(instances.map((i) => ({ path: i.path, size: i.size })));
    const path = opts.studyInstanceUid ? `/studies/${encodeURIComponent(opts.studyInstanceUid)}` : '/studies';
    let res: HttpResponse;
    try {
      res = await send({
        method: 'POST',
        url: new URL(this.baseUrl + path),
        agent: this.#agent,
        headers: this.#headers({ 'content-type': body.contentType, 'content-length': body.contentLength, accept: ACCEPT_STOW }),
        timeoutMs: this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        body: () => (opts.throttle ? opts.throttle(body.open()) : body.open()),
        ...(opts.signal ? { signal: opts.signal } : {}),
        maxResponseBytes: MAX_RESPONSE_BYTES,
      });
    } catch (err) {
      if (err instanceof HttpFailure) return resultsFromError(instances, `${err.kind} error: ${err.message}`);
      throw err;
    }
    return resultsFromExchange(instances, exchangeOf(res));
  }

  /**
   * Distinct instances the receiver lists for a study (QIDO-RS), for reconciliation. Pages with
   * limit/offset so a receiver that caps result sets is still counted in full; 204/404 mean none.
   * Throws (with the URL and status) when the receiver cannot answer: a count is never guessed.
   */
  async countInstances(studyInstanceUid: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const seen = new Set<string>();
    let unnamed = 0;
    for (let offset = 0; ; offset += QIDO_PAGE) {
      const url = new URL(`${this.baseUrl}/studies/${encodeURIComponent(studyInstanceUid)}/instances`);
      url.searchParams.set('limit', String(QIDO_PAGE));
      url.searchParams.set('offset', String(offset));
      const page = await this.#qido(url, opts.signal);
      const before = seen.size + unnamed;
      for (const ds of page) {
        const uid = sopInstanceUidOf(ds);
        if (uid) seen.add(uid);
        else unnamed++;
      }
      // A short page ends the list; so does one that adds nothing (a receiver ignoring offset).
      if (page.length < QIDO_PAGE || seen.size + unnamed === before) break;
    }
    return seen.size + unnamed;
  }

  async #qido(url: URL, signal: AbortSignal | undefined): Promise<unknown[]> {
    const res = await send({
      method: 'GET',
      url,
      agent: this.#agent,
      headers: this.#headers({ accept: 'application/dicom+json' }),
      timeoutMs: this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
      maxResponseBytes: MAX_RESPONSE_BYTES,
    });
    if (res.status === 204 || res.status === 404) return [];
    const text = res.body.toString('utf8');
    if (res.status !== 200) throw new Error(`QIDO-RS GET ${url.href}: HTTP ${res.status} ${snippet(text)}`);
    if (text.trim() === '') return [];
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new Error(`QIDO-RS GET ${url.href}: response is not JSON (${(err as Error).message}): ${snippet(text)}`);
    }
    if (!Array.isArray(doc)) throw new Error(`QIDO-RS GET ${url.href}: expected a JSON array, got ${snippet(text)}`);
    return doc;
  }

  #headers(extra: Record<string, string | number>): Record<string, string | number> {
    return { ...extra, ...(this.#auth ? { authorization: this.#auth } : {}) };
  }
}

async function checkLocalFile(inst: StowInstance): Promise<StowInstanceResult | undefined> {
  const fail = (detail: string): StowInstanceResult => ({ sopInstanceUid: inst.sopInstanceUid, outcome: 'failed', retryable: false, detail });
  try {
    const st = await stat(inst.path);
    if (!st.isFile()) return fail(`local file ${inst.path} is not a regular file`);
    if (st.size !== inst.size) return fail(`local file ${inst.path} holds ${st.size} bytes, ${inst.size} expected`);
    return undefined;
  } catch (err) {
    return fail(`local file ${inst.path} unreadable: ${(err as Error).message}`);
  }
}

function exchangeOf(res: HttpResponse): Exchange {
  const text = res.body.toString('utf8');
  const ex: Exchange = { status: res.status };
  const retryAfter = parseRetryAfter(header(res, 'retry-after'));
  if (retryAfter !== undefined) ex.retryAfterMs = retryAfter;
  const location = header(res, 'location');
  if (location) ex.location = location;
  if (text.trim() === '') {
    ex.bodyProblem = 'response had no body';
    return ex;
  }
  const declared = bodyFormat(header(res, 'content-type'), text);
  const sniffed = bodyFormat(undefined, text);
  if (!declared) {
    ex.bodyProblem = `response body is not a STOW response: ${snippet(text)}`;
    return ex;
  }
  // Some receivers label XML as JSON or the reverse; the bytes get the last word.
  for (const format of sniffed && sniffed !== declared ? [declared, sniffed] : [declared]) {
    try {
      ex.response = parseStowResponse(text, format);
      delete ex.bodyProblem;
      return ex;
    } catch (err) {
      ex.bodyProblem ??= `${(err as Error).message}: ${snippet(text)}`;
    }
  }
  return ex;
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

function sopInstanceUidOf(ds: unknown): string | undefined {
  if (typeof ds !== 'object' || ds === null) return undefined;
  const el = (ds as Record<string, { Value?: unknown[] } | undefined>)['00080018'];
  const v = el?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}
