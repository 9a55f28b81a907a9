// Fleet API routes beyond access control: bodies, errors, config validation, commands with wait,
// tokens shown once and stored hashed, and the audit trail of every change.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiTokenStore } from '../../../../fleet/api/auth.ts';
import type { CommandRecord, DeviceDetail, DeviceSummary, EnrolTokenInfo, StatsRow } from '../../../../shared/fleet/api.ts';
import { COMMAND_NAMES } from '../../../../shared/fleet/messages.ts';
import { parseEnrolToken } from '../../../../shared/fleet/enrol.ts';
import { topics } from '../../../../shared/fleet/topics.ts';
import { daily, identity, telemetry } from '../devices/fixtures.ts';
import { CA_PIN, startApiHarness, type ApiHarness } from './harness.ts';

const ID = 'mb-aaaa1111';
const ID2 = 'mb-bbbb2222';
let h: ApiHarness;

beforeEach(async () => {
  h = await startApiHarness();
  await h.registry.register(identity(ID));
  await h.registry.register(identity(ID2, { group: 'mobile', labels: {} }));
});

afterEach(async () => {
  await h.close();
});

function call(role: 'viewer' | 'operator' | 'admin', method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  return h.app.inject({ method, url, headers: { authorization: `Bearer ${h.tokens[role]}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
}

describe('device routes', () => {
  it('lists, filters and details devices; unknown ids are a JSON 404', async () => {
    h.bus.deliver(ID, 'status', { online: true, at: new Date().toISOString() });
    h.bus.deliver(ID, 'telemetry', telemetry({ disk: 90, daily: [daily(new Date().toISOString().slice(0, 10), 'CT', { studies: 4 })] }));
    const all = (await call('viewer', 'GET', '/api/devices')).json<DeviceSummary[]>();
    expect(all.map((d) => [d.id, d.online, d.health])).toEqual([
      [ID, true, 'warning'],
      [ID2, false, 'unknown'],
    ]);
    expect((await call('viewer', 'GET', '/api/devices?online=true')).json<DeviceSummary[]>().map((d) => d.id)).toEqual([ID]);
    expect((await call('viewer', 'GET', '/api/devices?group=mobile')).json<DeviceSummary[]>().map((d) => d.id)).toEqual([ID2]);
    expect((await call('viewer', 'GET', '/api/devices?health=unknown')).json<DeviceSummary[]>().map((d) => d.id)).toEqual([ID2]);
    expect((await call('viewer', 'GET', '/api/devices?health=sick')).statusCode).toBe(400);
    const d = (await call('viewer', 'GET', `/api/devices/${ID}`)).json<DeviceDetail>();
    expect(d).toMatchObject({ id: ID, hostname: `${ID}.lan`, telemetry: { system: { diskUsedPercent: 90 } }, alertList: [{ kind: 'disk' }] });
    expect(d.history).toHaveLength(1);
    const missing = await call('viewer', 'GET', '/api/devices/mb-none0000');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'not-found', message: 'no device mb-none0000', statusCode: 404 });
    const stats = (await call('viewer', 'GET', '/api/stats?days=2')).json<StatsRow[]>();
    expect(stats).toMatchObject([{ modality: 'CT', clinic: 'north', studies: 4 }]);
    expect((await call('viewer', 'GET', '/api/alerts')).json()).toMatchObject([{ deviceId: ID, kind: 'disk' }]);
    expect((await call('viewer', 'GET', '/api/overview')).json()).toMatchObject({ devices: 2, online: 1, byHealth: { warning: 1, unknown: 1 } });
  });

  it('PATCH changes group, tags and labels and is audited', async () => {
    const res = await call('operator', 'PATCH', `/api/devices/${ID}`, { group: 'ct', tags: ['floor-2'], labels: { clinic: 'east' } });
    expect(res.json()).toMatchObject({ id: ID, group: 'ct', tags: ['floor-2'], labels: { clinic: 'east' } });
    expect((await call('operator', 'PATCH', `/api/devices/${ID}`, { tags: { a: 1 } })).json()).toMatchObject({ error: 'bad-request', statusCode: 400 });
    const bad = await h.app.inject({ method: 'PATCH', url: `/api/devices/${ID}`, headers: { authorization: `Bearer ${h.tokens.operator}`, 'content-type': 'application/json' }, payload: '{"group":' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'bad-request', message: expect.stringContaining('not valid JSON') });
    expect((await h.audit.list({ limit: 10, action: 'device.update' }))[0]).toMatchObject({ actor: 'otto-operator', target: ID, outcome: 'ok' });
  });

  it('PUT config: 400 naming the keys, force needs admin, success publishes retained', async () => {
    const bad = await call('operator', 'PUT', `/api/devices/${ID}/config`, { config: { dicomPort: 'x', dataDir: '/etc' } });
    expect(bad.statusCode).toBe(400);
    const body = bad.json<{ error: string; message: string; errors: string[] }>();
    expect(body.error).toBe('config-invalid');
    expect(body.errors.some((e) => e.startsWith('/dicomPort'))).toBe(true);
    expect(body.errors.some((e) => e.startsWith('/dataDir'))).toBe(true);
    const forcedByOperator = await call('operator', 'PUT', `/api/devices/${ID}/config`, { config: { dicomPort: 'x' }, force: true });
    expect(forcedByOperator.statusCode).toBe(403);
    expect(forcedByOperator.json<{ message: string }>().message).toContain('admin');
    const forced = await call('admin', 'PUT', `/api/devices/${ID}/config`, { config: { dicomPort: 'x' }, force: true });
    expect(forced.json()).toMatchObject({ version: 1, config: { dicomPort: 'x' }, issuedBy: 'ada-admin' });
    const ok = await call('operator', 'PUT', `/api/devices/${ID}/config`, { config: { aeTitle: 'CLINIC1' } });
    expect(ok.json()).toMatchObject({ version: 2, config: { aeTitle: 'CLINIC1' }, issuedBy: 'otto-operator' });
    expect(h.bus.published.at(-1)).toMatchObject({ topic: topics.desired(ID), opts: { retain: true }, payload: { version: 2 } });
    expect((await call('viewer', 'GET', `/api/devices/${ID}/config`)).json()).toMatchObject({ desired: { version: 2 }, reported: null });
    const audit = await h.audit.list({ limit: 10, action: 'device.config.set' });
    expect(audit.map((e) => `${e.actor}:${e.outcome}`)).toEqual(['otto-operator:ok', 'ada-admin:ok', 'otto-operator:refused', 'otto-operator:refused']);
  });

  it('commands: unknown names listed, 202 pending, wait gives the final record', async () => {
    const unknown = await call('operator', 'POST', `/api/devices/${ID}/commands`, { name: 'format-disk' });
    expect(unknown.statusCode).toBe(400);
    for (const n of COMMAND_NAMES) expect(unknown.json<{ message: string }>().message).toContain(n);
    const pending = await call('operator', 'POST', `/api/devices/${ID}/commands`, { name: 'ping' });
    expect(pending.statusCode).toBe(202);
    expect(pending.json()).toMatchObject({ status: 'pending', name: 'ping', issuedBy: 'otto-operator' });
    // A scripted device answers whatever it receives shortly after.
    const answered = call('operator', 'POST', `/api/devices/${ID}/commands`, { name: 'fetch-logs', args: { lines: 5 }, wait: true });
    setTimeout(() => {
      const req = h.bus.published.at(-1)?.payload as { id: string };
      h.bus.deliver(ID, 'commands/res', { id: req.id, status: 'ok', result: { lines: ['a'] }, at: new Date().toISOString() });
    }, 100);
    const done = await answered;
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ status: 'ok', result: { lines: ['a'] }, args: { lines: 5 } });
    const timedOut = await call('operator', 'POST', `/api/devices/${ID}/commands`, { name: 'restart', timeoutMs: 200, wait: true });
    expect(timedOut.json()).toMatchObject({ status: 'timed-out' });
    const list = (await call('viewer', 'GET', `/api/devices/${ID}/commands`)).json<CommandRecord[]>();
    expect(list.map((c) => c.name)).toEqual(['restart', 'fetch-logs', 'ping']);
    expect((await call('viewer', 'GET', `/api/commands/${list[1]!.id}`)).json()).toMatchObject({ status: 'ok' });
    expect((await call('viewer', 'GET', '/api/commands/nope-nope')).statusCode).toBe(404);
    expect((await h.audit.list({ limit: 10, action: 'device.command' })).length).toBe(3);
  });

  it('revoke answers the revoked summary; later changes are refused with 409', async () => {
    const res = await call('admin', 'POST', `/api/devices/${ID}/revoke`);
    expect(res.json()).toMatchObject({ id: ID, revoked: true, online: false });
    expect(h.registry.isRevoked(ID)).toBe(true);
    expect((await call('operator', 'PUT', `/api/devices/${ID}/config`, { config: {} })).statusCode).toBe(409);
    expect((await call('operator', 'POST', `/api/devices/${ID}/commands`, { name: 'ping' })).statusCode).toBe(409);
    expect((await h.audit.list({ limit: 5, action: 'device.revoke' }))[0]).toMatchObject({ actor: 'ada-admin', target: ID, outcome: 'ok' });
    expect((await h.audit.list({ limit: 5, action: 'device.command' }))[0]).toMatchObject({ actor: 'otto-operator', target: ID, outcome: 'error', detail: { error: `device ${ID} is revoked` } });
  });
});

describe('token routes', () => {
  it('enrolment tokens: created with a QR code, listed, revoked; bad durations explained', async () => {
    const res = await call('admin', 'POST', '/api/tokens/enrolment', { group: 'radiology', expires: '7d', labels: { clinic: 'west' } });
    expect(res.statusCode).toBe(201);
    const { token, qrSvg, info } = res.json<{ token: string; qrSvg: string; info: EnrolTokenInfo }>();
    expect(parseEnrolToken(token)).toMatchObject({ tokenId: info.tokenId, caPin: CA_PIN });
    expect(qrSvg).toMatch(/^<svg/);
    expect(info).toMatchObject({ group: 'radiology', labels: { clinic: 'west' }, state: 'pending', createdBy: 'ada-admin' });
    expect(Date.parse(info.expiresAt) - Date.parse(info.createdAt)).toBe(7 * 86_400_000);
    expect((await call('admin', 'GET', '/api/tokens/enrolment')).json<EnrolTokenInfo[]>().map((t) => t.tokenId)).toEqual([info.tokenId]);
    const bad = await call('admin', 'POST', '/api/tokens/enrolment', { group: 'g', expires: 'soon' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ message: string }>().message).toContain("invalid duration 'soon'");
    expect((await call('admin', 'DELETE', `/api/tokens/enrolment/${info.tokenId}`)).json()).toEqual({ revoked: true });
    expect((await call('admin', 'DELETE', `/api/tokens/enrolment/${info.tokenId}`)).statusCode).toBe(404);
    expect((await call('admin', 'GET', '/api/tokens/enrolment')).json<EnrolTokenInfo[]>()[0]?.state).toBe('revoked');
    const audit = await h.audit.list({ limit: 10, action: 'token.' });
    expect(audit.map((e) => `${e.action}:${e.outcome}`)).toEqual(['token.revoke:error', 'token.revoke:ok', 'token.create:ok']);
  });

  it('API tokens: shown once, stored hashed, usable at once, revocable; names unique', async () => {
    const res = await call('admin', 'POST', '/api/tokens/api', { name: 'grafana', role: 'viewer' });
    expect(res.statusCode).toBe(201);
    const { token, info } = res.json<{ token: string; info: { id: string; name: string; role: string } }>();
    expect(info).toMatchObject({ name: 'grafana', role: 'viewer', createdBy: 'ada-admin' });
    const file = await readFile(join(h.dir, 'api-tokens.json'), 'utf8');
    expect(file).not.toContain(token);
    expect(file).not.toContain('bootstrap-admin-token');
    expect(file).toContain('"sha256"');
    const me = await h.app.inject({ url: '/api/whoami', headers: { authorization: `Bearer ${token}` } });
    expect(me.json()).toEqual({ name: 'grafana', role: 'viewer' });
    const listed = (await call('admin', 'GET', '/api/tokens/api')).json<Array<Record<string, unknown>>>();
    expect(listed.map((t) => t['name'])).toContain('grafana');
    expect(listed.every((t) => !('sha256' in t) && !('token' in t))).toBe(true);
    expect((await call('admin', 'POST', '/api/tokens/api', { name: 'grafana', role: 'admin' })).statusCode).toBe(409);
    expect((await call('admin', 'POST', '/api/tokens/api', { name: 'x', role: 'root' })).statusCode).toBe(400);
    // A fresh store reads the same file (fleet restart).
    expect((await ApiTokenStore.open(h.dir)).authenticate(token)?.name).toBe('grafana');
    expect((await call('admin', 'DELETE', `/api/tokens/api/${info.id}`)).json()).toEqual({ revoked: true });
    expect((await h.app.inject({ url: '/api/whoami', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
    const audit = await h.audit.list({ limit: 10, action: 'apitoken.' });
    expect(audit.map((e) => `${e.action}:${e.outcome}`)).toEqual(['apitoken.revoke:ok', 'apitoken.create:error', 'apitoken.create:ok']);
  });

  it('audit query filters by action, target and time', async () => {
    await call('operator', 'PATCH', `/api/devices/${ID}`, { tags: ['a'] });
    await call('operator', 'PATCH', `/api/devices/${ID2}`, { tags: ['b'] });
    const byTarget = (await call('admin', 'GET', `/api/audit?target=${ID2}`)).json<Array<{ target: string }>>();
    expect(byTarget.map((e) => e.target)).toEqual([ID2]);
    expect((await call('admin', 'GET', '/api/audit?action=device.update&limit=1')).json()).toHaveLength(1);
    expect((await call('admin', 'GET', '/api/audit?before=2000-01-01T00:00:00Z')).json()).toEqual([]);
  });
});
