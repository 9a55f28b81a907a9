// GET /api/update on the box's local admin API: which slot runs, the update status the fleet was
// told, the trial in progress and the releases this box refuses (and why).
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Logger } from '../../../shared/log.ts';
import { UpdateStatus } from '../../../shared/update/messages.ts';
import { SlotState } from '../../../shared/update/slots.ts';
import { ErrorBody } from '../../api/schemas.ts';
import type { UpdateInfo } from './updater.ts';

type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger, TypeBoxTypeProvider>;

const Opt = Type.Optional;
export const UpdateInfoBody = Type.Object({
  updatable: Type.Boolean(),
  slot: Opt(Type.String()),
  root: Opt(Type.String()),
  reason: Opt(Type.String()),
  runningVersion: Type.String(),
  // Unsafe keeps the schema while the static type stays UpdateStatus (a mapped literal union
  // turns into never through the fastify type provider).
  status: Type.Union([Type.Unsafe<UpdateStatus>(UpdateStatus), Type.Null()]),
  trial: Type.Union([Type.Object({ version: Type.String(), boots: Type.Integer(), windowMs: Type.Integer() }), Type.Null()]),
  versions: SlotState.properties.versions,
  failed: SlotState.properties.failed,
});

export function registerUpdateRoutes(app: App, info: () => UpdateInfo | undefined): void {
  app.get('/api/update', { schema: { response: { 200: UpdateInfoBody, 404: ErrorBody } } }, async (_req, reply) => {
    const i = info();
    if (!i) return reply.status(404).send({ error: 'not-found', message: 'no updater', statusCode: 404 });
    return i;
  });
}
