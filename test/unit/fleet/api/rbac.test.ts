// Every protected route × every caller: no token → 401, too small a role → 403 (audited), enough →
// the route's success status. Routes that change something run last where they would break others.
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../../../shared/fleet/api.ts';
import { identity } from '../devices/fixtures.ts';
import { startApiHarness, type ApiHarness } from './harness.ts';

const ID = 'mb-aaaa1111';
let h: ApiHarness;
let cmdId = '';
let enrolTokenId = '';
let spareApiTokenId = '';

beforeAll(async () => {
  h = await startApiHarness();
  await h.registry.register(identity(ID));
  cmdId = (await h.devices.sendCommand(ID, 'ping', {}, 'setup')).id;
  enrolTokenId = (await h.app.inject({ method: 'POST', url: '/api/tokens/enrolment', headers: { authorization: `Bearer ${h.tokens.admin}` }, payload: { group: 'g', expires: '1h' } })).json<{ info: { tokenId: string } }>().info.tokenId;
  spareApiTokenId = (await h.apiTokens.create('spare', 'viewer', 'setup')).info.id;
});

afterAll(async () => {
  await h.close();
});

interface RouteCase {
  method: InjectOptions['method'];
  url: () => string;
  need: Role;
  ok: number;
  /** Body per calling role (names must differ per call). */
  body?: (role: Role) => unknown;
}

const ROUTES: RouteCase[] = [
  { method: 'GET', url: () => '/api/whoami', need: 'viewer', ok: 200 },
  { method: 'GET', url: () => '/api/overview', need: 'viewer', ok: 200 },
  { method: 'GET', url: () => '/api/devices?online=false&q=mb-', need: 'viewer', ok: 200 },
  { method: 'GET', url: () => `/api/devices/${ID}`, need: 'viewer', ok: 200 },
  { method: 'GET', url: () => `/api/devices/${ID}/config`, need: 'viewer', ok: 200 },
  { method: 'GET', url: () => `/api/devices/${ID}/commands`, need: 'viewer', ok: 200 },
  { method: 'GET', url: () => `/api/commands/${cmdId}`, need: 'viewer', ok: 200 },
  { method: 'GET', url: () => '/api/alerts', need: 'viewer', ok: 200 },
  { method: 'GET', url: () => '/api/stats?days=7', need: 'viewer', ok: 200 },
  { method: 'PATCH', url: () => `/api/devices/${ID}`, need: 'operator', ok: 200, body: (r) => ({ tags: [r] }) },
  { method: 'PUT', url: () => `/api/devices/${ID}/config`, need: 'operator', ok: 200, body: () => ({ config: { logLevel: 'debug' } }) },
  { method: 'POST', url: () => `/api/devices/${ID}/commands`, need: 'operator', ok: 202, body: () => ({ name: 'ping' }) },
  { method: 'GET', url: () => '/api/tokens/enrolment', need: 'admin', ok: 200 },
  { method: 'POST', url: () => '/api/tokens/enrolment', need: 'admin', ok: 201, body: () => ({ group: 'radiology', expires: '24h', labels: { clinic: 'north' } }) },
  { method: 'DELETE', url: () => `/api/tokens/enrolment/${enrolTokenId}`, need: 'admin', ok: 200 },
  { method: 'GET', url: () => '/api/tokens/api', need: 'admin', ok: 200 },
  { method: 'POST', url: () => '/api/tokens/api', need: 'admin', ok: 201, body: (r) => ({ name: `made-by-${r}`, role: 'viewer' }) },
  { method: 'DELETE', url: () => `/api/tokens/api/${spareApiTokenId}`, need: 'admin', ok: 200 },
  { method: 'GET', url: () => '/api/audit?limit=5', need: 'admin', ok: 200 },
  { method: 'POST', url: () => `/api/devices/${ID}/revoke`, need: 'admin', ok: 200 },
];

const CALLERS: Array<Role | 'bootstrap' | 'none' | 'bogus'> = ['none', 'bogus', 'viewer', 'operator', 'admin'];
const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

describe('fleet API RBAC matrix', () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.url().replace(/[0-9a-f-]{36}|[a-z0-9]{10}$/, ':id')} needs ${route.need}`, async () => {
      for (const caller of CALLERS) {
        const headers: Record<string, string> = {};
        if (caller === 'bogus') headers.authorization = 'Bearer mbxa_not-a-real-token';
        else if (caller !== 'none' && caller !== 'bootstrap') headers.authorization = `Bearer ${h.tokens[caller]}`;
        const role = caller === 'none' || caller === 'bogus' || caller === 'bootstrap' ? undefined : caller;
        const res = await h.app.inject({ method: route.method, url: route.url(), headers, ...(route.body ? { payload: route.body(role ?? 'viewer') as object } : {}) });
        const expected = role === undefined ? 401 : rank[role] >= rank[route.need] ? route.ok : 403;
        expect(res.statusCode, `${caller} → ${res.body}`).toBe(expected);
        if (expected >= 400) {
          const body = res.json<{ error: string; message: string; statusCode: number }>();
          expect(body.statusCode).toBe(expected);
          if (expected === 403) expect(body.message).toContain(`needs the ${route.need} role`);
          if (caller === 'none') expect(body.message).toContain('Authorization: Bearer');
          if (caller === 'bogus') expect(body.message).toContain('unknown or revoked');
        }
      }
    });
  }

  it('refusals of authenticated callers are audited with the role needed', async () => {
    const refused = await h.audit.list({ limit: 1000 });
    const mine = refused.filter((e) => e.outcome === 'refused');
    expect(mine.some((e) => e.actor === 'ann-viewer' && e.action === 'device.revoke' && e.target === ID && (e.detail as { need?: string }).need === 'admin')).toBe(true);
    expect(mine.some((e) => e.actor === 'otto-operator' && e.action === 'audit.read')).toBe(true);
    expect(mine.some((e) => e.actor === 'ann-viewer' && e.action === 'device.config.set')).toBe(true);
    // Unauthenticated calls are not audited (anyone could flood the log).
    expect(refused.some((e) => e.actor === 'anonymous')).toBe(false);
  });

  it('the bootstrap admin token works as admin', async () => {
    const res = await h.app.inject({ url: '/api/whoami', headers: { authorization: 'Bearer bootstrap-admin-token-0123456789' } });
    expect(res.json()).toEqual({ name: 'bootstrap-admin', role: 'admin' });
  });

  it('/metrics is open from loopback only; a viewer token opens it from elsewhere', async () => {
    expect((await h.app.inject({ url: '/metrics' })).statusCode).toBe(200);
    const remote = await h.app.inject({ url: '/metrics', remoteAddress: '10.1.2.3' });
    expect(remote.statusCode).toBe(401);
    const withToken = await h.app.inject({ url: '/metrics', remoteAddress: '10.1.2.3', headers: { authorization: `Bearer ${h.tokens.viewer}` } });
    expect(withToken.statusCode).toBe(200);
    expect(withToken.headers['content-type']).toMatch(/^text\/plain/);
    expect(withToken.body).toContain('mbox_fleet_telemetry_latency_seconds');
  });

  it('OpenAPI and the docs are public', async () => {
    const spec = await h.app.inject({ url: '/api/openapi.json' });
    expect(spec.statusCode).toBe(200);
    const paths = Object.keys(spec.json<{ paths: Record<string, unknown> }>().paths);
    for (const p of ['/api/devices', '/api/devices/{id}', '/api/devices/{id}/config', '/api/devices/{id}/commands', '/api/commands/{cid}', '/api/tokens/api', '/api/audit', '/api/stats']) expect(paths).toContain(p);
    expect([200, 302]).toContain((await h.app.inject({ url: '/docs' })).statusCode);
  });
});
