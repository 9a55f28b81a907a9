// The box's local admin API: health, metrics, studies, instances, queue, quarantine.
import Fastify, { LogController } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Logger } from '../../shared/log.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { DiskGuard } from '../store/disk-guard.ts';
import type { Quarantine } from '../store/quarantine.ts';
import type { Store } from '../store/store.ts';
import { registerAgentRoutes, type AgentStatusSource } from './agent-routes.ts';
import { registerUpdateRoutes } from '../agent/update/routes.ts';
import type { UpdateInfo } from '../agent/update/updater.ts';
import { ErrorBody, HealthBody, InstanceBody, QuarantineBody, QueueBody, StudyBody } from './schemas.ts';

export interface ApiDeps {
  store: Store;
  disk: DiskGuard;
  quarantine: Quarantine;
  metrics: ApplianceMetrics;
  log: Logger;
  /** Live facts for /healthz from the running parts. */
  health: () => { dicomListening: boolean; watchFolders: number };
  /** The fleet agent's status; undefined (or returning undefined) when no fleet is configured. */
  agent?: AgentStatusSource;
  /** The updater's state for GET /api/update. */
  update?: () => UpdateInfo | undefined;
}

export function buildApi(deps: ApiDeps) {
    // Per-request lines would drown the log of a box polled by monitoring; errors are still logged.
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'api' }),
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err: { statusCode?: number; message: string; validation?: unknown }, req, reply) => {
    const statusCode = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (statusCode >= 500) req.log.error({ err }, 'request failed');
    void reply.status(statusCode).send({ error: statusCode === 400 ? 'bad-request' : 'internal', message: err.message, statusCode });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: 'not-found', message: `no route ${req.method} ${req.url}`, statusCode: 404 });
  });

  app.get('/healthz', { schema: { response: { 200: HealthBody, 503: HealthBody } } }, async (_req, reply) => {
    const live = deps.health();
    const disk = deps.disk.current;
    const ok = live.dicomListening;
    return reply.status(ok ? 200 : 503).send({
      status: ok ? (disk.ok ? 'ok' : 'degraded') : 'down',
      dicom: live.dicomListening,
      watchFolders: live.watchFolders,
      disk: { accepting: disk.ok, freeBytes: disk.freeBytes, usedPercent: Math.round(disk.usedPercent * 10) / 10, ...(disk.reason ? { reason: disk.reason } : {}) },
    });
  });

  app.get('/metrics', async (_req, reply) => {
    const { byState } = await deps.store.queueSummary();
    deps.metrics.instancesByState.reset();
    for (const [state, n] of Object.entries(byState)) deps.metrics.instancesByState.set({ state }, n ?? 0);
    deps.metrics.diskFreeBytes.set(deps.disk.current.freeBytes);
    deps.metrics.diskOk.set(deps.disk.ok ? 1 : 0);
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  app.get(
    '/api/studies',
    { schema: { querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 10000, default: 1000 }) }), response: { 200: Type.Array(StudyBody) } } },
    async (req) => {
      const studies = await deps.store.listStudies(req.query.limit);
      return studies.map((s) => ({ ...s, complete: Boolean(s.completedAt) }));
    },
  );

  app.get(
    '/api/studies/:studyInstanceUid',
    { schema: { params: Type.Object({ studyInstanceUid: Type.String({ maxLength: 64 }) }), response: { 200: StudyBody, 404: ErrorBody } } },
    async (req, reply) => {
      const study = await deps.store.getStudy(req.params.studyInstanceUid);
      if (!study) return reply.status(404).send({ error: 'not-found', message: `no study ${req.params.studyInstanceUid}`, statusCode: 404 });
      const instances = await deps.store.studyInstanceIds(study.studyInstanceUid);
      return { ...study, complete: Boolean(study.completedAt), instanceIds: instances };
    },
  );

  app.get(
    '/api/instances/:sopInstanceUid',
    { schema: { params: Type.Object({ sopInstanceUid: Type.String({ maxLength: 80 }) }), response: { 200: InstanceBody, 404: ErrorBody } } },
    async (req, reply) => {
      const record = await deps.store.get(req.params.sopInstanceUid);
      if (!record) return reply.status(404).send({ error: 'not-found', message: `no instance ${req.params.sopInstanceUid}`, statusCode: 404 });
      return { ...record, deliveries: await deps.store.deliveries.forInstance(record.id) };
    },
  );

  app.get('/api/queue', { schema: { response: { 200: QueueBody } } }, async () => {
    const summary = await deps.store.queueSummary();
    const age = (at?: string) => (at ? Math.max(0, (Date.now() - Date.parse(at)) / 1000) : null);
    const destinations = (await deps.store.deliveries.summaries()).map((d) => ({ ...d, oldestAgeSeconds: age(d.oldestPendingAt) }));
    return { ...summary, oldestAgeSeconds: age(summary.oldestPendingAt), destinations };
  });

  app.get(
    '/api/quarantine',
    { schema: { querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 200 }) }), response: { 200: Type.Array(QuarantineBody) } } },
    async (req) => deps.quarantine.list(req.query.limit),
  );

  registerAgentRoutes(app, { store: deps.store, ...(deps.agent ? { agent: deps.agent } : {}) });
  if (deps.update) registerUpdateRoutes(app, deps.update);
  return app;
}
