// Devices, their config and commands, alerts and stats.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Alert, CommandRecord, DeviceDetail, DeviceSummary, FleetOverview, roleAtLeast, StatsRow } from '../../shared/fleet/api.ts';
import { COMMAND_NAMES, DesiredConfig, ReportedConfig } from '../../shared/fleet/messages.ts';
import type { DeviceRegistry } from '../devices/registry.ts';
import type { DeviceService } from '../devices/service.ts';
import type { AuditLog } from '../types.ts';
import { callerOf, sendError } from './guard.ts';
import { CommandBody, CommandParams, CommandsQuery, ConfigBody, ConfigError, DeviceParams, DevicePatch, DeviceQuery, ERRORS, StatsQuery } from './schemas.ts';

export interface DeviceRouteOptions {
  registry: DeviceRegistry;
  devices: DeviceService;
  audit: AuditLog;
}

const tags = ['devices'];
const notFound = (id: string) => ({ error: 'not-found', message: `no device ${id}`, statusCode: 404 });

export const deviceRoutes: FastifyPluginAsync<DeviceRouteOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { registry, devices, audit } = opts;

  app.get(
    '/api/overview',
    { config: { role: 'viewer' }, schema: { tags, summary: 'Fleet counts by state and health, with every active alert', response: { 200: FleetOverview, ...ERRORS } } },
    async () => devices.overview(),
  );

  app.get(
    '/api/devices',
    { config: { role: 'viewer' }, schema: { tags, summary: 'List devices', querystring: DeviceQuery, response: { 200: Type.Array(DeviceSummary), ...ERRORS } } },
    async (req) => devices.summaries(req.query),
  );

  app.get(
    '/api/devices/:id',
    { config: { role: 'viewer' }, schema: { tags, summary: 'One device with telemetry, history, config, alerts and events', params: DeviceParams, response: { 200: DeviceDetail, ...ERRORS } } },
    async (req, reply) => devices.detail(req.params.id) ?? reply.code(404).send(notFound(req.params.id)),
  );

  app.patch(
    '/api/devices/:id',
    { config: { role: 'operator', action: 'device.update' }, schema: { tags, summary: 'Change group, tags or labels', params: DeviceParams, body: DevicePatch, response: { 200: DeviceSummary, ...ERRORS } } },
    async (req, reply) => {
      const { id } = req.params;
      if (!registry.get(id)) return reply.code(404).send(notFound(id));
      await registry.update(id, req.body);
      await audit.record({ actor: callerOf(req).name, action: 'device.update', target: id, outcome: 'ok', detail: { ...req.body } });
      return devices.summary(id);
    },
  );

  app.get(
    '/api/devices/:id/config',
    {
      config: { role: 'viewer' },
      schema: { tags, summary: 'Desired and last reported config', params: DeviceParams, response: { 200: Type.Object({ desired: Type.Union([DesiredConfig, Type.Null()]), reported: Type.Union([ReportedConfig, Type.Null()]) }), ...ERRORS } },
    },
    async (req, reply) => {
      const s = registry.get(req.params.id);
      if (!s) return reply.code(404).send(notFound(req.params.id));
      return { desired: s.desired, reported: s.reported };
    },
  );

  app.put(
    '/api/devices/:id/config',
    {
      config: { role: 'operator', action: 'device.config.set' },
      schema: { tags, summary: 'Set the desired config (next version, published retained)', params: DeviceParams, body: ConfigBody, response: { 200: DesiredConfig, ...ERRORS, 400: ConfigError } },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const { id } = req.params;
      if (!registry.get(id)) return reply.code(404).send(notFound(id));
      if (req.body.force && !roleAtLeast(caller.role, 'admin')) {
        await audit.record({ actor: caller.name, action: 'device.config.set', target: id, outcome: 'refused', detail: { need: 'admin', role: caller.role, force: true } });
        return sendError(reply, 403, 'forbidden', `force skips validation and needs the admin role; token '${caller.name}' has the ${caller.role} role`);
      }
      return devices.setDesired(id, req.body.config, caller.name, { force: req.body.force === true });
    },
  );

  app.post(
    '/api/devices/:id/commands',
    {
      config: { role: 'operator', action: 'device.command' },
      schema: { tags, summary: `Send a command (${COMMAND_NAMES.join(', ')})`, params: DeviceParams, body: CommandBody, response: { 200: CommandRecord, 202: CommandRecord, ...ERRORS } },
    },
    async (req, reply) => {
      const { id } = req.params;
      const { name, args = {}, timeoutMs, wait } = req.body;
      if (!registry.get(id)) return reply.code(404).send(notFound(id));
      if (!(COMMAND_NAMES as readonly string[]).includes(name)) {
        return sendError(reply, 400, 'unknown-command', `unknown command '${name}'; commands: ${COMMAND_NAMES.join(', ')}`, { commands: COMMAND_NAMES });
      }
      const rec = await devices.sendCommand(id, name, args, callerOf(req).name, timeoutMs);
      if (!wait || rec.status !== 'pending') return reply.code(wait ? 200 : 202).send(rec);
      const waitMs = Date.parse(rec.expiresAt) - Date.now() + 1000;
      return reply.code(200).send((await devices.waitFor(rec.id, Math.max(waitMs, 0))) ?? rec);
    },
  );

  app.get(
    '/api/devices/:id/commands',
    { config: { role: 'viewer' }, schema: { tags, summary: 'Recent commands, newest first', params: DeviceParams, querystring: CommandsQuery, response: { 200: Type.Array(CommandRecord), ...ERRORS } } },
    async (req, reply) => (registry.get(req.params.id) ? devices.listCommands(req.params.id, req.query.limit) : reply.code(404).send(notFound(req.params.id))),
  );

  app.get(
    '/api/commands/:cid',
    { config: { role: 'viewer' }, schema: { tags, summary: 'One command', params: CommandParams, response: { 200: CommandRecord, ...ERRORS } } },
    async (req, reply) => (await devices.getCommand(req.params.cid)) ?? sendError(reply, 404, 'not-found', `no command ${req.params.cid}`),
  );

  app.post(
    '/api/devices/:id/revoke',
    { config: { role: 'admin', action: 'device.revoke' }, schema: { tags, summary: 'Revoke the device: its certificate stops working and it is disconnected', params: DeviceParams, response: { 200: DeviceSummary, ...ERRORS } } },
    async (req, reply) => {
      const { id } = req.params;
      if (!registry.get(id)) return reply.code(404).send(notFound(id));
      await devices.revoke(id, callerOf(req).name);
      return devices.summary(id);
    },
  );

  app.get(
    '/api/alerts',
    { config: { role: 'viewer' }, schema: { tags: ['fleet'], summary: 'Active alerts, critical first', response: { 200: Type.Array(Alert), ...ERRORS } } },
    async () => devices.alerts(),
  );

  app.get(
    '/api/stats',
    { config: { role: 'viewer' }, schema: { tags: ['fleet'], summary: 'Per day × modality × clinic, summed over devices', querystring: StatsQuery, response: { 200: Type.Array(StatsRow), ...ERRORS } } },
    async (req) => devices.stats(req.query.days),
  );
};
