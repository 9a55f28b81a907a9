// One-time enrolment tokens as files under <fleet dataDir>/tokens, so `mbox token create` works
// while the fleet process runs: pending/<id>.json until used (an atomic rename into used/, which
// exactly one concurrent enrolment wins) or revoked (a rename into revoked/). Only the SHA-256 of
// each secret is stored.
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { mkdir, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { EnrolTokenInfo } from '../../shared/fleet/api.ts';
import { formatEnrolToken, hashTokenSecret, type EnrolToken } from '../../shared/fleet/enrol.ts';
import { writeFileDurable } from '../../shared/crypto/durable-file.ts';
import { fsyncPath } from '../../shared/storage/fsync.ts';
import type { TokenRecord } from '../types.ts';

const STATES = ['pending', 'used', 'revoked'] as const;
type Folder = (typeof STATES)[number];
const TOKEN_ID_RE = /^[a-z0-9]{10}$/;
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export type ConsumeResult = { ok: true; record: TokenRecord } | { ok: false; code: 'token-unknown' | 'token-used' | 'token-expired' };

interface StoredRecord extends TokenRecord {
  revokedBy?: string;
}

export class TokenStore {
  readonly dir: string;
  private ready: Promise<void> | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  async create(opts: { group: string; labels: Record<string, string>; expiresInMs: number; createdBy: string; caPin: string }): Promise<{ token: string; record: TokenRecord }> {
    if (!opts.group) throw new Error('an enrolment token needs a group');
    if (!(opts.expiresInMs > 0) || !Number.isFinite(opts.expiresInMs)) throw new Error(`token lifetime must be a positive duration, got ${opts.expiresInMs} ms`);
    await this.init();
    const now = Date.now();
    const secret = randomBytes(24).toString('base64url');
    for (;;) {
      const tokenId = Array.from({ length: 10 }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]).join('');
      if (await this.find(tokenId)) continue;
      const record: TokenRecord = {
        tokenId,
        secretSha256: hashTokenSecret(secret),
        group: opts.group,
        labels: { ...opts.labels },
        createdAt: new Date(now).toISOString(),
        createdBy: opts.createdBy,
        expiresAt: new Date(now + opts.expiresInMs).toISOString(),
      };
      await writeFileDurable(this.path('pending', tokenId), json(record), 0o600);
      return { token: formatEnrolToken({ tokenId, secret, caPin: opts.caPin }), record };
    }
  }

  /** Every token, newest first. */
  async list(now = new Date()): Promise<EnrolTokenInfo[]> {
    await this.init();
    const out: EnrolTokenInfo[] = [];
    for (const folder of STATES) {
      for (const name of await readdir(join(this.dir, folder))) {
        if (!name.endsWith('.json') || name.startsWith('.')) continue;
        const rec = await this.read(folder, name.slice(0, -5));
        if (!rec) continue;
        const state = folder === 'pending' && Date.parse(rec.expiresAt) <= now.getTime() ? 'expired' : folder;
        out.push({
          tokenId: rec.tokenId,
          group: rec.group,
          labels: rec.labels,
          createdAt: rec.createdAt,
          createdBy: rec.createdBy,
          expiresAt: rec.expiresAt,
          state,
          ...(rec.usedAt ? { usedAt: rec.usedAt } : {}),
          ...(rec.deviceId ? { deviceId: rec.deviceId } : {}),
        });
      }
    }
    return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  /** Revokes a pending (or expired, unused) token. False when there is no such pending token. */
  async revoke(tokenId: string, by: string): Promise<boolean> {
    if (!TOKEN_ID_RE.test(tokenId)) return false;
    await this.init();
    if (!(await this.move(tokenId, 'pending', 'revoked'))) return false;
    const rec = await this.read('revoked', tokenId);
    if (rec) await writeFileDurable(this.path('revoked', tokenId), json({ ...rec, revokedAt: new Date().toISOString(), revokedBy: by }), 0o600);
    return true;
  }

  /**
   * Uses the token once. A wrong secret for a known id reads as unknown (it must not confirm that
   * the id exists); an expired token stays where it is; a revoked one is unknown.
   */
  async consume(token: EnrolToken, now: Date): Promise<ConsumeResult> {
    if (!TOKEN_ID_RE.test(token.tokenId)) return { ok: false, code: 'token-unknown' };
    await this.init();
    const pending = await this.read('pending', token.tokenId);
    if (!pending) {
      const used = await this.read('used', token.tokenId);
      return { ok: false, code: used && secretMatches(used, token.secret) ? 'token-used' : 'token-unknown' };
    }
    if (!secretMatches(pending, token.secret)) return { ok: false, code: 'token-unknown' };
    if (Date.parse(pending.expiresAt) <= now.getTime()) return { ok: false, code: 'token-expired' };
    // The rename is the decision: of two concurrent enrolments with one token, one rename succeeds.
    if (!(await this.move(token.tokenId, 'pending', 'used'))) {
      return { ok: false, code: (await this.read('used', token.tokenId)) ? 'token-used' : 'token-unknown' };
    }
    const record: TokenRecord = { ...pending, usedAt: now.toISOString() };
    await writeFileDurable(this.path('used', token.tokenId), json(record), 0o600);
    return { ok: true, record };
  }

  /** Notes which device a used token enrolled. */
  async markDevice(tokenId: string, deviceId: string): Promise<void> {
    if (!TOKEN_ID_RE.test(tokenId)) throw new Error(`malformed token id '${tokenId}'`);
    const rec = await this.read('used', tokenId);
    if (!rec) throw new Error(`token ${tokenId} is not used; cannot record device ${deviceId}`);
    await writeFileDurable(this.path('used', tokenId), json({ ...rec, deviceId }), 0o600);
  }

  private init(): Promise<void> {
    this.ready ??= Promise.all(STATES.map((s) => mkdir(join(this.dir, s), { recursive: true, mode: 0o700 }))).then(
      () => undefined,
      (err: unknown) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }

  private path(folder: Folder, tokenId: string): string {
    return join(this.dir, folder, `${tokenId}.json`);
  }

  private async find(tokenId: string): Promise<boolean> {
    for (const s of STATES) if (await this.read(s, tokenId)) return true;
    return false;
  }

  private async read(folder: Folder, tokenId: string): Promise<StoredRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(folder, tokenId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return JSON.parse(text) as StoredRecord;
  }

  /** Atomic move between folders; false when the source is gone (someone else moved it first). */
  private async move(tokenId: string, from: Folder, to: Folder): Promise<boolean> {
    try {
      await rename(this.path(from, tokenId), this.path(to, tokenId));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await Promise.all([fsyncPath(join(this.dir, to)), fsyncPath(join(this.dir, from))]);
    return true;
  }
}

function secretMatches(rec: TokenRecord, secret: string): boolean {
  const want = Buffer.from(rec.secretSha256, 'hex');
  const got = Buffer.from(hashTokenSecret(secret), 'hex');
  return want.length === got.length && timingSafeEqual(want, got);
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "90s", "30m", "24h", "7d", "2w" (also "1.5h") → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  const unit = m ? UNIT_MS[m[2]!.toLowerCase()] : undefined;
  const ms = m && unit ? Number(m[1]) * unit : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new Error(`invalid duration '${text}': use a positive number followed by s, m, h, d or w (e.g. 90s, 30m, 24h, 7d)`);
  }
  return Math.round(ms);
}
