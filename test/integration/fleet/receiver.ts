// Test side of the cloud receiver: start it on a free loopback port, build STOW-RS bodies by hand
// (independently of shared/dicomweb/multipart.ts, so a writer bug cannot hide a parser bug).
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { stowReceiver } from '../../../fleet/ingest/stow-receiver.ts';
import type { ReceiverHandle, StowReceiverOptions } from '../../../fleet/ingest/types.ts';
import { createLogger } from '../../../shared/log.ts';
import { LOOPBACK } from '../../helpers/ports.ts';

export interface TestReceiver {
  /** …/dicom-web, no trailing slash. */
  base: string;
  handle: ReceiverHandle;
  close(): Promise<void>;
}

export async function startReceiver(opts: Omit<StowReceiverOptions, 'log'> & { log?: StowReceiverOptions['log'] }): Promise<TestReceiver> {
  const log = opts.log ?? createLogger('error', 'stow-receiver-test');
  const app = Fastify({ loggerInstance: log });
  let handle: ReceiverHandle | undefined;
  await app.register(stowReceiver, { ...opts, log, onOpen: (h) => (handle = h) });
  await app.listen({ port: 0, host: LOOPBACK });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('receiver did not bind a TCP port');
  return { base: `http://${LOOPBACK}:${addr.port}/dicom-web`, handle: handle!, close: () => app.close() };
}

export interface Part {
  data: Buffer;
  /** Omitted: no Content-Type header in the part. */
  contentType?: string;
}

export function multipartBody(parts: Part[], boundary = `mbox-test-${randomBytes(8).toString('hex')}`): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n${p.contentType ? `Content-Type: ${p.contentType}\r\n` : ''}\r\n`, 'latin1'), p.data, Buffer.from('\r\n', 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

export const dicomParts = (files: Buffer[]): Part[] => files.map((data) => ({ data, contentType: 'application/dicom' }));

export interface StowReply {
  status: number;
  contentType: string;
  text: string;
  /** DICOM JSON dataset (or error body) when the reply is JSON. */
  json: Record<string, { vr?: string; Value?: Array<Record<string, { Value?: unknown[] }>> }> & { error?: string; message?: string; statusCode?: number };
}

export async function stow(url: string, body: { body: Buffer; contentType: string }, headers: Record<string, string> = {}): Promise<StowReply> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': body.contentType, ...headers }, body: body.body });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  return { status: res.status, contentType, text, json: contentType.includes('json') && text ? JSON.parse(text) : {} };
}

/** Item attribute values of a sequence in a DICOM JSON response, e.g. seq(json, '00081199', '00081155'). */
export function seq(json: StowReply['json'], seqTag: string, attr: string): unknown[] {
  return (json[seqTag]?.Value ?? []).map((item) => item[attr]?.Value?.[0]);
}
