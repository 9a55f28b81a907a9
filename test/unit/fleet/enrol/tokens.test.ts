// Enrolment tokens: format, one use under concurrency, expiry, revocation, wrong secrets, and the
// duration parser the CLI uses for --expires.
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDuration, TokenStore } from '../../../../fleet/enrol/tokens.ts';
import { hashTokenSecret, parseEnrolToken } from '../../../../shared/fleet/enrol.ts';

const PIN = 'AbCdEfGhIjKlMnOpQrStUv';
let dir: string;
let store: TokenStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mbox-tokens-'));
  store = new TokenStore(join(dir, 'tokens'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const create = (expiresInMs = 3_600_000) => store.create({ group: 'north', labels: { clinic: 'Northside' }, expiresInMs, createdBy: 'cli', caPin: PIN });

describe('TokenStore', () => {
  it('creates tokens in the mbx1 format and stores only the hash of the secret, privately', async () => {
    const { token, record } = await create();
    const parsed = parseEnrolToken(token);
    expect(parsed).toBeDefined();
    expect(parsed!.tokenId).toMatch(/^[a-z0-9]{10}$/);
    expect(parsed!.secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(parsed!.caPin).toBe(PIN);
    expect(record.tokenId).toBe(parsed!.tokenId);
    const file = join(dir, 'tokens', 'pending', `${record.tokenId}.json`);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain(parsed!.secret);
    expect(JSON.parse(text).secretSha256).toBe(hashTokenSecret(parsed!.secret));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const [info] = await store.list();
    expect(info).toMatchObject({ tokenId: record.tokenId, group: 'north', labels: { clinic: 'Northside' }, state: 'pending', createdBy: 'cli' });
  });

  it('is consumed exactly once when many enrolments race for it', async () => {
    const { token } = await create();
    const t = parseEnrolToken(token)!;
    const results = await Promise.all(Array.from({ length: 12 }, () => store.consume(t, new Date())));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.code))).toEqual(Array(11).fill('token-used'));
    expect(await store.consume(t, new Date())).toEqual({ ok: false, code: 'token-used' });
    await store.markDevice(t.tokenId, 'mb-dev001');
    const [info] = await store.list();
    expect(info).toMatchObject({ state: 'used', deviceId: 'mb-dev001' });
    expect(info!.usedAt).toBeDefined();
    expect(await readdir(join(dir, 'tokens', 'used'))).toEqual([`${t.tokenId}.json`]);
  });

  it('reports expiry without burning the token, and lists it as expired', async () => {
    const { token } = await create(60_000);
    const t = parseEnrolToken(token)!;
    const later = new Date(Date.now() + 120_000);
    expect(await store.consume(t, later)).toEqual({ ok: false, code: 'token-expired' });
    expect((await store.list(later))[0]!.state).toBe('expired');
    expect((await store.consume(t, new Date())).ok).toBe(true);
  });

  it('treats a wrong secret, an unknown id and a revoked token alike as unknown', async () => {
    const { token } = await create();
    const t = parseEnrolToken(token)!;
    const wrong = { ...t, secret: 'x'.repeat(32) };
    expect(await store.consume(wrong, new Date())).toEqual({ ok: false, code: 'token-unknown' });
    expect(await store.consume({ ...t, tokenId: 'zzzzzzzzzz' }, new Date())).toEqual({ ok: false, code: 'token-unknown' });
    expect(await store.consume({ ...t, tokenId: '../../etc' }, new Date())).toEqual({ ok: false, code: 'token-unknown' });
    expect(await store.revoke(t.tokenId, 'admin')).toBe(true);
    expect(await store.revoke(t.tokenId, 'admin')).toBe(false);
    expect(await store.consume(t, new Date())).toEqual({ ok: false, code: 'token-unknown' });
    expect((await store.list())[0]).toMatchObject({ state: 'revoked' });
    // Used tokens cannot be revoked, and a wrong secret for a used token does not reveal it either.
    const second = parseEnrolToken((await create()).token)!;
    expect((await store.consume(second, new Date())).ok).toBe(true);
    expect(await store.revoke(second.tokenId, 'admin')).toBe(false);
    expect(await store.consume({ ...second, secret: 'y'.repeat(32) }, new Date())).toEqual({ ok: false, code: 'token-unknown' });
  });

  it('lists newest first and refuses nonsense', async () => {
    const a = await create();
    await new Promise((r) => setTimeout(r, 5));
    const b = await create();
    expect((await store.list()).map((i) => i.tokenId)).toEqual([b.record.tokenId, a.record.tokenId]);
    await expect(store.create({ group: '', labels: {}, expiresInMs: 1000, createdBy: 'cli', caPin: PIN })).rejects.toThrow(/group/);
    await expect(create(0)).rejects.toThrow(/positive/);
    expect(await store.revoke('nope', 'x')).toBe(false);
  });
});

describe('parseDuration', () => {
  it('reads seconds, minutes, hours, days and weeks', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('2w')).toBe(1_209_600_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration(' 10M ')).toBe(600_000);
  });

  it('refuses anything else with a message showing the format', () => {
    for (const bad of ['', '24', 'h', '-1h', '0s', '1y', '1h30m', 'abc']) expect(() => parseDuration(bad)).toThrow(/invalid duration.*24h/);
  });
});
