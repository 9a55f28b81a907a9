// The OpenAPI document: with fleetOpenApi at the root it covers routes of other plugins too (the
// enrolment endpoints), which stay public; the API's own routes keep their guard.
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetApi, fleetOpenApi } from '../../../../fleet/api/plugin.ts';
import { createLogger } from '../../../../shared/log.ts';
import { fleetConfig } from '../devices/fixtures.ts';
import { startApiHarness, type ApiHarness } from './harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApiHarness();
});
afterAll(async () => {
  await h.close();
});

describe('fleetOpenApi', () => {
  it('documents sibling plugins and the fleet API in one document', async () => {
    const app = Fastify({ logger: false });
    await app.register(fleetOpenApi);
    await app.register(async (enrol) => {
      enrol.get('/api/enrol/ca', { schema: { tags: ['enrolment'], summary: 'CA' } }, async () => 'pem');
    });
    // A stand-in enrolment token store: this test never creates tokens.
    const tokens = { create: async () => Promise.reject(new Error('unused')), list: async () => [], revoke: async () => false };
    await app.register(fleetApi, { registry: h.registry, devices: h.devices, tokens, audit: h.audit, caPin: 'x', config: fleetConfig({ dataDir: h.dir }), log: createLogger('silent'), apiTokens: h.apiTokens });
    await app.ready();
    const spec = (await app.inject({ url: '/api/openapi.json' })).json<{ paths: Record<string, unknown>; components: { securitySchemes: Record<string, unknown> } }>();
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/api/enrol/ca', '/api/devices', '/api/devices/{id}/revoke', '/api/tokens/enrolment']));
    expect(spec.components.securitySchemes).toHaveProperty('bearer');
    expect((await app.inject({ url: '/api/enrol/ca' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/devices' })).statusCode).toBe(401);
    await app.close();
  });
});
