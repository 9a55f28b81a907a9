// API tokens for the fleet API: bearer tokens with a role (viewer < operator < admin). Only the
// SHA-256 of each token is kept, in <fleet dataDir>/api-tokens.json (replaced atomically). The
// bootstrap admin token from --admin-token / MBOX_ADMIN_TOKEN is accepted as 'bootstrap-admin'
// and never written anywhere.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiTokenInfo, Role } from '../../shared/fleet/api.ts';
import { ROLES } from '../../shared/fleet/api.ts';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';

export const BOOTSTRAP_ADMIN = 'bootstrap-admin';
export const apiTokensPath = (fleetDataDir: string): string => join(fleetDataDir, 'api-tokens.json');

/** Who is calling, once the bearer token checked out. */
export interface Caller {
  id: string;
  name: string;
  role: Role;
}

interface StoredToken extends ApiTokenInfo {
  role: Role;
  sha256: string;
}

export class TokenConflictError extends Error {
  override name = 'TokenConflictError';
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const isRole = (r: unknown): r is Role => typeof r === 'string' && (ROLES as readonly string[]).includes(r);

export class ApiTokenStore {
  readonly path: string;
  private readonly bootstrapHash: string | undefined;
  private tokens: StoredToken[] = [];
  private byHash = new Map<string, StoredToken>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(path: string, bootstrapToken: string | undefined) {
    this.path = path;
    this.bootstrapHash = bootstrapToken ? sha256(bootstrapToken) : undefined;
  }

  static async open(fleetDataDir: string, bootstrapToken?: string): Promise<ApiTokenStore> {
    const store = new ApiTokenStore(apiTokensPath(fleetDataDir), bootstrapToken);
    let text: string | undefined;
    try {
      text = await readFile(store.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new Error(`${store.path} is not valid JSON (${(err as Error).message}); fix or remove it`);
      }
      if (!Array.isArray(parsed)) throw new Error(`${store.path} must hold a JSON array of tokens`);
      store.set(parsed.filter((t: Partial<StoredToken>) => typeof t?.sha256 === 'string' && typeof t.name === 'string' && isRole(t.role)) as StoredToken[]);
    }
    return store;
  }

  /** The caller a bearer token belongs to, or undefined. */
  authenticate(token: string): Caller | undefined {
    const hash = sha256(token);
    if (this.bootstrapHash && hash === this.bootstrapHash) return { id: 'bootstrap', name: BOOTSTRAP_ADMIN, role: 'admin' };
    const t = this.byHash.get(hash);
    return t ? { id: t.id, name: t.name, role: t.role } : undefined;
  }

  list(): ApiTokenInfo[] {
    return this.tokens.map(({ id, name, role, createdAt, createdBy }) => ({ id, name, role, createdAt, createdBy }));
  }

  /** The token text is returned here once and never again. Names are unique (they sign the audit log). */
  async create(name: string, role: Role, createdBy: string): Promise<{ token: string; info: ApiTokenInfo }> {
    const id = randomBytes(6).toString('hex');
    const token = `mbxa_${randomBytes(32).toString('base64url')}`;
    const stored: StoredToken = { id, name, role, createdAt: new Date().toISOString(), createdBy, sha256: sha256(token) };
    await this.change((cur) => {
      if (name === BOOTSTRAP_ADMIN || cur.some((t) => t.name === name)) throw new TokenConflictError(`an API token named '${name}' exists already`);
      return [...cur, stored];
    });
    return { token, info: { id, name, role, createdAt: stored.createdAt, createdBy } };
  }

  async revoke(id: string): Promise<ApiTokenInfo | undefined> {
    let gone: StoredToken | undefined;
    await this.change((cur) => {
      gone = cur.find((x) => x.id === id);
      return gone ? cur.filter((x) => x !== gone) : cur;
    });
    return gone && { id: gone.id, name: gone.name, role: gone.role, createdAt: gone.createdAt, createdBy: gone.createdBy };
  }

  private set(tokens: StoredToken[]): void {
    this.tokens = tokens;
    this.byHash = new Map(tokens.map((t) => [t.sha256, t]));
  }

  /** Changes run one after another on the latest list, so concurrent ones cannot lose each other. */
  private change(fn: (current: StoredToken[]) => StoredToken[]): Promise<void> {
    const run = this.writing.then(async () => {
      const next = fn(this.tokens);
      if (next === this.tokens) return;
      await writeFileDurable(this.path, `${JSON.stringify(next, null, 2)}\n`, 0o600);
      this.set(next);
    });
    this.writing = run.catch(() => undefined);
    return run;
  }
}

/** The bearer token of an Authorization header, or why there is none. */
export function bearerOf(header: string | undefined): { token: string } | { problem: string } {
  if (!header) return { problem: 'missing API token: send the header "Authorization: Bearer <token>"' };
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return { problem: 'the Authorization header must be "Bearer <token>"' };
  return { token: m[1]! };
}
