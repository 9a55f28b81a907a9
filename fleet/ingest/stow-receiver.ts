// The fleet's cloud receiver: DICOMweb STOW-RS (PS3.18 10.5) for boxes to upload to, plus the
// QIDO-RS instance list (10.6) they reconcile against. An instance is listed as stored only once
// its file and index record are both on disk.
import { join } from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { MultipartError, parseMultipart } from '../../shared/dicomweb/multipart-parser.ts';
import {
  FailureReason,
  stowHttpStatus,
  stowResponseJson,
  stowResponseXml,
  type FailedInstanceRef,
  type StoreInstancesResponse,
  type StoredInstanceRef,
} from '../../shared/dicomweb/stow-response.ts';
import { Forwarder } from './forwarder.ts';
import { IngestIndex } from './index-db.ts';
import { checkStowBody, responseFormat, type ResponseFormat } from './negotiate.ts';
import { ObjectStore } from './object-store.ts';
import { receivePart, type IntakeContext, type RequestInfo } from './part-intake.ts';
import type { InstanceEntry, ReceiverHandle, StowReceiverOptions, Uploader } from './types.ts';

const UID = Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 });

function sendError(reply: FastifyReply, statusCode: number, error: string, message: string): FastifyReply {
  return reply.status(statusCode).type('application/json').send({ error, message, statusCode });
}

/** Default uploader identity: an auth hook's `uploader` decoration, else a self-declared header. */
function defaultIdentify(req: FastifyRequest): Uploader | undefined {
  const decorated = (req as FastifyRequest & { uploader?: unknown }).uploader;
  if (typeof decorated === 'string' && decorated) return { id: decorated, verified: true };
  const header = req.headers['x-mbox-uploader'];
  const claimed = Array.isArray(header) ? header[0] : header;
  return claimed ? { id: claimed.slice(0, 128), verified: false } : undefined;
}

export const stowReceiver: FastifyPluginAsync<StowReceiverOptions> = async (fastify, opts) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const log = opts.log.child({ component: 'stow-receiver' });
  const objects = new ObjectStore(opts.dataDir);
  await objects.open();
  const index = new IngestIndex(join(opts.dataDir, 'index'));
  await index.open();
  const forwarder = opts.forward ? new Forwarder(index, objects, opts.forward, log.child({ component: 'forwarder' })) : undefined;
  const ctx: IntakeContext = { index, objects, log, forwarding: Boolean(forwarder) };
  app.addHook('onClose', async () => {
    await forwarder?.stop();
    await index.close();
  });
  // Pending forwards from before a restart go out without waiting for a new upload.
  app.addHook('onReady', async () => {
    void forwarder?.kick();
  });

  // Bodies stay raw streams: parts go to disk as they arrive, never whole into memory.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const statusCode = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (statusCode >= 500) req.log.error({ err }, 'request failed');
    void sendError(reply, statusCode, statusCode === 400 ? 'bad-request' : statusCode === 404 ? 'not-found' : 'internal', err.message);
  });

  const identify = opts.identify ?? defaultIdentify;
  const store = async (req: FastifyRequest, reply: FastifyReply, studyInstanceUid?: string): Promise<FastifyReply> => {
    const format = responseFormat(req.headers.accept);
    if (!format) return sendError(reply, 406, 'not-acceptable', `cannot answer in ${req.headers.accept}; accepts application/dicom+json or application/dicom+xml`);
    const body = checkStowBody(req.headers['content-type']);
    if (!body.ok) return sendError(reply, body.status, body.error, body.message);
    const from = identify(req);
    const info: RequestInfo = { ...(studyInstanceUid ? { studyInstanceUid } : {}), ...(body.partType ? { defaultPartType: body.partType } : {}), ...(from ? { from } : {}) };
    const referenced: StoredInstanceRef[] = [];
    const failed: FailedInstanceRef[] = [];
    const base = opts.publicBaseUrl?.replace(/\/+$/, '') ?? `${req.protocol}://${req.host}/dicom-web`;
    const instanceUrl = (e: InstanceEntry) => `${base}/studies/${e.studyInstanceUid}/series/${e.seriesInstanceUid}/instances/${e.sopInstanceUid}`;
    let parts = 0;
    let stored = 0;
    try {
      for await (const part of parseMultipart(req.body as AsyncIterable<Buffer>, body.boundary)) {
        parts++;
        const outcome = await receivePart(ctx, part, info);
        if (outcome.kind === 'stored') {
          if (!outcome.duplicate) stored++;
          const { entry, warningReason, detail } = outcome;
          referenced.push({ sopClassUid: entry.sopClassUid, sopInstanceUid: entry.sopInstanceUid, retrieveUrl: instanceUrl(entry), ...(warningReason !== undefined ? { warningReason, detail } : {}) });
        } else {
          const { kind: _kind, ...item } = outcome;
          failed.push(item);
        }
      }
    } catch (err) {
      if (!(err instanceof MultipartError)) throw err;
      // Nothing read yet: the request as a whole is malformed. Otherwise what was stored stays stored and is reported.
      if (parts === 0 || referenced.length + failed.length === 0) return sendError(reply, 400, 'bad-request', `malformed multipart body: ${err.message}`);
      failed.push({ failureReason: FailureReason.CannotUnderstand, detail: `multipart body malformed after ${parts} part(s): ${err.message}` });
    }
    if (parts === 0) return sendError(reply, 400, 'bad-request', 'multipart body has no parts');
    if (stored > 0) void forwarder?.kick();
    const response: StoreInstancesResponse = { ...(studyInstanceUid ? { retrieveUrl: `${base}/studies/${studyInstanceUid}` } : {}), referenced, failed };
    const status = stowHttpStatus(response);
    req.log.info({ parts, stored, duplicates: referenced.length - stored, failed: failed.length, status, from }, 'STOW-RS request');
    return sendDataset(reply, status, format, response);
  };

  app.post('/dicom-web/studies', (req, reply) => store(req, reply));
  app.post('/dicom-web/studies/:studyInstanceUid', { schema: { params: Type.Object({ studyInstanceUid: UID }) } }, (req, reply) =>
    store(req, reply, req.params.studyInstanceUid),
  );

  app.get(
    '/dicom-web/studies/:studyInstanceUid/instances',
    {
      schema: {
        params: Type.Object({ studyInstanceUid: UID }),
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })), offset: Type.Optional(Type.Integer({ minimum: 0 })) }),
      },
    },
    async (req, reply) => {
      if (!responseFormat(req.headers.accept, ['json'])) return sendError(reply, 406, 'not-acceptable', 'QIDO-RS answers in application/dicom+json only');
      const entries = await index.studyInstances(req.params.studyInstanceUid, req.query.offset ?? 0, req.query.limit ?? Infinity);
      // PS3.18 10.6.3: a search that matches nothing is 204 with no body.
      if (entries.length === 0) return reply.status(204).send();
      return reply.type('application/dicom+json').send(entries.map(qidoItem));
    },
  );

  const handle: ReceiverHandle = {
    getInstance: (uid) => index.get('instances', uid),
    getForward: (uid) => index.get('forwards', uid),
    forwardSummary: () => index.forwardSummary(),
    forwardNow: () => forwarder?.kick() ?? Promise.resolve(),
  };
  opts.onOpen?.(handle);
};

function sendDataset(reply: FastifyReply, status: number, format: ResponseFormat, r: StoreInstancesResponse): FastifyReply {
  if (format === 'xml') return reply.status(status).type('application/dicom+xml; charset=utf-8').send(stowResponseXml(r));
  return reply.status(status).type('application/dicom+json').send(JSON.stringify(stowResponseJson(r)));
}

const ui = (v: string) => ({ vr: 'UI', Value: [v] });
function qidoItem(e: InstanceEntry) {
  return { '00080016': ui(e.sopClassUid), '00080018': ui(e.sopInstanceUid), '0020000D': ui(e.studyInstanceUid), '0020000E': ui(e.seriesInstanceUid) };
}

