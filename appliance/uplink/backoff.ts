// Retry pacing for uploads: exponential backoff with full jitter (a uniformly random wait between
// 0 and the exponential ceiling), so a hundred boxes that lost the same cloud at the same moment
// do not come back in lockstep. No retry limit by default: the box holds images until they are
// delivered or an operator decides otherwise.

export interface BackoffOptions {
  /** Ceiling of the first retry's wait (default 1 s). */
  baseMs?: number;
  /** Largest ceiling, however many attempts failed (default 5 min). */
  capMs?: number;
  /** Attempts in all, the first one included, after which to give up (default: never). */
  maxAttempts?: number;
  /** Uniform in [0, 1), for tests. */
  random?: () => number;
}

export const DEFAULT_BACKOFF = { baseMs: 1000, capMs: 5 * 60_000, maxAttempts: Number.POSITIVE_INFINITY } as const;

function settings(opts: BackoffOptions): Required<Omit<BackoffOptions, 'random'>> & { random: () => number } {
  const s = { ...DEFAULT_BACKOFF, random: Math.random, ...definedOnly(opts) };
  if (!(s.baseMs > 0) || !Number.isFinite(s.baseMs)) throw new Error(`backoff baseMs must be a finite number > 0, got ${s.baseMs}`);
  if (!(s.capMs >= s.baseMs)) throw new Error(`backoff capMs (${s.capMs}) must be >= baseMs (${s.baseMs})`);
  if (!(s.maxAttempts >= 1)) throw new Error(`backoff maxAttempts must be >= 1, got ${s.maxAttempts}`);
  return s;
}

// `{ capMs: undefined }` from a config layer should mean "default", not NaN arithmetic.
function definedOnly(opts: BackoffOptions): BackoffOptions {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as BackoffOptions;
}

/** The ceiling for the wait after `attempt` failures (1 = the first failure). */
export function backoffCeiling(attempt: number, opts: BackoffOptions = {}): number {
  const { baseMs, capMs } = settings(opts);
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`backoff attempt must be an integer >= 1, got ${attempt}`);
  // 2 ** n overflows to Infinity past n = 1023, which min() handles.
  return Math.min(capMs, baseMs * 2 ** (attempt - 1));
}

/**
 * Milliseconds to wait after `attempt` failures, or undefined once maxAttempts is reached.
 * A server's Retry-After is a floor: waiting less would only earn another refusal.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, retryAfterMs?: number): number | undefined {
  const s = settings(opts);
  if (attempt >= s.maxAttempts) return undefined;
  const jittered = Math.floor(s.random() * backoffCeiling(attempt, opts));
  return retryAfterMs !== undefined && retryAfterMs > jittered ? retryAfterMs : jittered;
}
