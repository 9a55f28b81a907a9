// Turns what a STOW-RS exchange produced (a response, or none) into one result per instance sent.
// The rule throughout: only an instance the receiver names in ReferencedSOPSequence is 'stored';
// anything else failed, and is retryable unless the receiver said why and the reason is one that
// sending the same bytes again cannot fix. A wrong 'permanent' loses images; a wrong 'retryable'
// costs bandwidth, so doubt resolves to retryable.
import type { StowInstance, StowInstanceResult, StowResult } from './types.ts';
import type { ParsedStowResponse, StowResponseItem } from './stow-response-reader.ts';

export interface Verdict {
  retryable: boolean;
  detail: string;
}

const hex = (code: number): string => `0x${code.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * FailureReason (0008,1197) per PS3.18 §10.5.3 / PS3.4 Annex B and C.14.
 * 0x0110 (processing failure) and 0x0112 (no such object instance) are retryable: neither says the
 * data set is wrong (those refusals have their own codes: A9xx, Cxxx, 0x0122, 0xC122), both
 * describe the receiver's side of the exchange, and resending is harmless because STOW of a
 * stored UID is idempotent. Note Orthanc 1.10 + DICOMweb 1.7 uses 0x0110 when an instance does not
 * belong to the study in the URL; the client never sends such a request (the caller's
 * studyInstanceUid comes from the instances), so that case does not argue for 'permanent'.
 */
export function classifyFailureReason(code: number): Verdict {
  const tag = `FailureReason ${hex(code)}`;
  if (code >= 0xa700 && code <= 0xa7ff) return { retryable: true, detail: `${tag}: refused, out of resources` };
  if (code >= 0xa900 && code <= 0xa9ff) return { retryable: false, detail: `${tag}: data set does not match SOP class` };
  if (code === 0xc122) return { retryable: false, detail: `${tag}: transfer syntax not supported` };
  if (code >= 0xc000 && code <= 0xcfff) return { retryable: false, detail: `${tag}: cannot understand` };
  if (code === 0x0122) return { retryable: false, detail: `${tag}: SOP class not supported` };
  if (code === 0x0110) return { retryable: true, detail: `${tag}: processing failure` };
  if (code === 0x0112) return { retryable: true, detail: `${tag}: no such object instance` };
  // Not in PS3.18's table; the m-box fleet receiver (like PS3.7's "duplicate SOP instance") uses it
  // for a UID it already holds with other content: only a person can settle which copy is right.
  if (code === 0x0111) return { retryable: false, detail: `${tag}: receiver holds this SOP Instance UID with different content` };
  if (code === 0x0213) return { retryable: true, detail: `${tag}: resource limitation` };
  return { retryable: true, detail: `${tag}: not a reason this client knows; kept for retry` };
}

/** WarningReason (0008,1196) on a stored instance: kept as history, never a failure. */
export function describeWarning(code: number): string {
  const what: Record<number, string> = {
    0xb000: 'coercion of data elements',
    0xb006: 'elements discarded',
    0xb007: 'data set does not match SOP class',
  };
  return `stored with WarningReason ${hex(code)}${what[code] ? `: ${what[code]}` : ''}`;
}

/**
 * The fate of an instance the response did not mention (or of every instance, when the answer
 * had no usable body), from the HTTP status alone. `batchSize` matters for 400: one bad part
 * spoils a whole batch, so only a single-instance request proves the instance itself is at fault.
 */
export function classifyHttpStatus(status: number, batchSize: number, location?: string): Verdict {
  const s = `HTTP ${status}`;
  if (status >= 200 && status < 300) return { retryable: true, detail: `not confirmed by receiver (${s})` };
  if (status === 409) return { retryable: true, detail: `not confirmed by receiver (${s})` };
  if (status === 401 || status === 403) {
    // Credentials are configuration: an operator fixes them, and the queue must not drop images meanwhile.
    return { retryable: true, detail: `${s}: receiver refused our credentials; fix the destination's auth settings` };
  }
  if (status === 413) return { retryable: true, detail: `${s}: request too large` };
  if (status === 404 || status === 405) return { retryable: true, detail: `${s}: no STOW-RS service at this URL; check the destination's base URL` };
  if (status === 406 || status === 415) return { retryable: true, detail: `${s}: receiver refuses the media types sent or asked for; check the destination` };
  if (status === 408 || status === 425 || status === 429) return { retryable: true, detail: `${s}: receiver asked us to come back later` };
  if (status >= 500) return { retryable: true, detail: `${s}: receiver error` };
  if (status >= 300 && status < 400) {
    // Following a redirect with a multi-gigabyte body is not something to do silently.
    return { retryable: true, detail: `${s}: redirected${location ? ` to ${location}` : ''}; point the destination at the final URL` };
  }
  if (status >= 400 && status < 500) {
    return batchSize === 1
      ? { retryable: false, detail: `${s}: receiver rejected this instance` }
      : { retryable: true, detail: `${s}: not confirmed by receiver in a rejected batch of ${batchSize}; send it alone to tell whether it is at fault` };
  }
  return { retryable: true, detail: `${s}: unexpected status` };
}

export interface Exchange {
  status: number;
  /** The parsed Store Instances Response, when the body held one. */
  response?: ParsedStowResponse;
  /** Why the body could not be used (empty, unparseable), for the details. */
  bodyProblem?: string;
  location?: string;
  retryAfterMs?: number;
}

/** One result per instance sent, in the order sent. */
export function resultsFromExchange(instances: readonly StowInstance[], ex: Exchange): StowResult {
  const referenced = new Map(ex.response?.referenced.map((r) => [r.sopInstanceUid, r]));
  const failed = new Map<string, StowResponseItem>();
  const anonymous: StowResponseItem[] = [];
  for (const f of ex.response?.failed ?? []) {
    if (f.sopInstanceUid) failed.set(f.sopInstanceUid, f);
    else anonymous.push(f);
  }
  // A refusal that names no instance (a part the receiver could not parse) can only be pinned on
  // an instance when exactly one sent instance is otherwise unaccounted for.
  const unaccounted = instances.filter((i) => !referenced.has(i.sopInstanceUid) && !failed.has(i.sopInstanceUid));
  const only = unaccounted[0];
  if (unaccounted.length === 1 && anonymous.length === 1 && only && anonymous[0]) failed.set(only.sopInstanceUid, anonymous[0]);

  const fallback = classifyHttpStatus(ex.status, instances.length, ex.location);
  const suffix = ex.bodyProblem ? `; ${ex.bodyProblem}` : '';
  const results = instances.map((inst): StowInstanceResult => {
    const uid = inst.sopInstanceUid;
    const ref = referenced.get(uid);
    // A receiver that both confirms and refuses one UID holds it: the confirmation is what counts.
    if (ref) {
      const detail = ref.reason !== undefined ? describeWarning(ref.reason) : ex.status === 202 ? 'stored (HTTP 202: receiver reported warnings)' : undefined;
      const full = withText(detail, ref.text);
      return { sopInstanceUid: uid, outcome: 'stored', retryable: false, ...(full ? { detail: full } : {}) };
    }
    const fail = failed.get(uid);
    if (fail) {
      const verdict = fail.reason !== undefined ? classifyFailureReason(fail.reason) : { retryable: true, detail: `refused by receiver without a FailureReason (HTTP ${ex.status})` };
      const reason = fail.reason !== undefined ? { failureReason: fail.reason } : {};
      return { sopInstanceUid: uid, outcome: 'failed', retryable: verdict.retryable, detail: withText(verdict.detail, fail.text) ?? verdict.detail, ...reason };
    }
    return { sopInstanceUid: uid, outcome: 'failed', retryable: fallback.retryable, detail: fallback.detail + suffix };
  });
  return { httpStatus: ex.status, results, ...(ex.retryAfterMs !== undefined ? { retryAfterMs: ex.retryAfterMs } : {}) };
}

function withText(detail: string | undefined, text: string | undefined): string | undefined {
  if (!text) return detail;
  return detail ? `${detail} (receiver: ${text})` : `receiver: ${text}`;
}

/** Every instance failed the same way before any response (network, timeout, abort, local read). */
export function resultsFromError(instances: readonly StowInstance[], detail: string, retryable = true): StowResult {
  return { httpStatus: 0, results: instances.map((i) => ({ sopInstanceUid: i.sopInstanceUid, outcome: 'failed', retryable, detail })) };
}

/** Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
