// The fleet API as the dashboard uses it: bearer token from sessionStorage (gone when the tab
// closes), JSON in and out, every failure turned into an ApiFailure carrying the server's
// {error, message}. A 401 anywhere sends the user back to the login view with that message.
import type { Role } from '../../../shared/fleet/api.ts';

const TOKEN_KEY = 'mbox.fleet.token';

export interface Me {
  name: string;
  role: Role;
}

export class ApiFailure extends Error {
  override name = 'ApiFailure';
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorizedHandler: (message: string) => void = () => undefined;

/** Called on any 401 (token revoked, expired, or mistyped). */
export function onUnauthorized(handler: (message: string) => void): void {
  unauthorizedHandler = handler;
}

export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

async function failureOf(res: Response): Promise<ApiFailure> {
  let code = `http-${res.status}`;
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body: unknown = await res.json();
    if (body && typeof body === 'object') {
      const b = body as { error?: unknown; message?: unknown };
      if (typeof b.error === 'string') code = b.error;
      if (typeof b.message === 'string' && b.message !== '') message = b.message;
    }
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiFailure(res.status, code, message);
}

/**
 * One API call. `token` overrides the stored one (the login check). Network errors become
 * ApiFailure with status 0 so views show one kind of error.
 */
export async function call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const bearer = token ?? storedToken();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, cache: 'no-store', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    throw new ApiFailure(0, 'network', `the fleet did not answer (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!res.ok) {
    const failure = await failureOf(res);
    if (res.status === 401 && token === undefined) unauthorizedHandler(failure.message);
    throw failure;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);

/** A query string from the non-empty entries. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Path segment for an id from the page (device ids are safe by pattern; encode anyway). */
export const seg = (id: string): string => encodeURIComponent(id);
