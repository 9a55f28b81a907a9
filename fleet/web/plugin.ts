// The fleet dashboard: GET / (the page shell) and GET /web/<name>.js|.css (browser modules and the
// stylesheet). Everything it shows comes from the fleet API with the user's bearer token, so
// these routes themselves are public and carry no data.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { AssetStore, type Asset } from './assets.ts';

export interface FleetWebOptions {
  /** Override where the files come from (tests). */
  srcDir?: string;
  staticDir?: string;
}

/**
 * No inline script or style, nothing from another origin: the page talks only to this server.
 * img-src allows data: for the enrolment QR code, which the API hands over as SVG text.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function notFound(reply: FastifyReply, what: string): FastifyReply {
  return reply.code(404).send({ error: 'not-found', message: `no dashboard file ${what}`, statusCode: 404 });
}

/** Sends an asset with validators; a matching If-None-Match gets 304 with no body. */
function sendAsset(req: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply
    .header('content-type', asset.contentType)
    .header('etag', asset.etag)
    // URLs carry no content hash, so the browser must revalidate; the ETag keeps that to a 304.
    .header('cache-control', 'no-cache')
    .header('x-content-type-options', 'nosniff');
  const inm = req.headers['if-none-match'];
  if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === asset.etag)) return reply.code(304).send();
  return reply.send(asset.body);
}

export const fleetWeb: FastifyPluginAsync<FleetWebOptions> = async (app, opts) => {
  const store = new AssetStore({
    ...(opts.srcDir ? { srcDir: opts.srcDir } : {}),
    ...(opts.staticDir ? { staticDir: opts.staticDir } : {}),
  });

  const page = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY');
    return sendAsset(req, reply, await store.page());
  };
  app.get('/', page);
  app.get('/index.html', page);

  app.get<{ Params: { name: string } }>('/web/:name', async (req, reply) => {
    const asset = await store.get(req.params.name);
    if (!asset) return notFound(reply, JSON.stringify(req.params.name));
    return sendAsset(req, reply, asset);
  });
};
