// One multipart part → one instance outcome. A bad part fails alone with a FailureReason; only a
// malformed multipart body (thrown by the parser) ends the request.
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseFileMeta, type FileMeta } from '../../shared/dicom/header.ts';
import { ACCEPTED_TRANSFER_SYNTAXES } from '../../shared/dicom/syntax.ts';
import { MultipartError, parseMediaType, type MultipartPart } from '../../shared/dicomweb/multipart-parser.ts';
import { FailureReason, WarningReason } from '../../shared/dicomweb/stow-response.ts';
import { ObjectWriter, type WrittenObject } from '../../shared/storage/object-writer.ts';
import type { Logger } from '../../shared/log.ts';
import { forwardOps, type IngestIndex, type Op } from './index-db.ts';
import { discard, type ObjectStore } from './object-store.ts';
import type { InstanceEntry, Uploader } from './types.ts';

export interface IntakeContext {
  index: IngestIndex;
  objects: ObjectStore;
  log: Logger;
  forwarding: boolean;
}

export interface RequestInfo {
  /** From the URL (POST /studies/{study}); every instance must belong to it. */
  studyInstanceUid?: string;
  /** The multipart `type` parameter: the media type of parts that carry none. */
  defaultPartType?: string;
  from?: Uploader;
}

export type PartOutcome =
  | { kind: 'stored'; entry: InstanceEntry; duplicate: boolean; warningReason?: number; detail?: string }
  | { kind: 'failed'; failureReason: number; detail: string; sopClassUid?: string; sopInstanceUid?: string };

const HEAD_BYTES = 64 * 1024;
// Media types that are DICOM representations of pixel data (PS3.18 8.7.3): a transfer syntax this
// receiver does not take in that form, rather than something it cannot understand at all.
const BULK_TYPE = /^(image|video)\/|^application\/octet-stream$/;
// headerFromWalk's messages for identifying attributes that are missing or not UIDs (shared/dicom/header.ts).
const NOT_AN_INSTANCE = /^missing (sopClassUid|sopInstanceUid|studyInstanceUid|seriesInstanceUid)$|is not a valid UID$/;

export async function receivePart(ctx: IntakeContext, part: MultipartPart, req: RequestInfo): Promise<PartOutcome> {
  const label = `part ${part.index + 1}`;
  const media = parseMediaType(part.contentType ?? req.defaultPartType ?? 'application/dicom');
  if (media.type !== 'application/dicom') {
    const reason = BULK_TYPE.test(media.type) ? FailureReason.TransferSyntaxNotSupported : FailureReason.CannotUnderstand;
    return fail(reason, `${label}: media type ${media.type} is not accepted; send PS3.10 files as application/dicom`);
  }
  const head = await readHead(part.body, HEAD_BYTES);
  let meta: FileMeta;
  try {
    meta = parseFileMeta(head.bytes);
  } catch (err) {
    return fail(FailureReason.CannotUnderstand, `${label}: ${(err as Error).message}`);
  }
  const ids = { sopClassUid: meta.mediaSopClassUid, sopInstanceUid: meta.mediaSopInstanceUid };
  if (!ACCEPTED_TRANSFER_SYNTAXES.includes(meta.transferSyntaxUid)) {
    return fail(FailureReason.TransferSyntaxNotSupported, `${label}: transfer syntax ${meta.transferSyntaxUid} is not accepted`, ids);
  }
  const declared = media.params['transfer-syntax'];
  if (declared && declared !== meta.transferSyntaxUid) {
    return fail(FailureReason.CannotUnderstand, `${label}: Content-Type says transfer-syntax ${declared}, the file meta says ${meta.transferSyntaxUid}`, ids);
  }
  let written: WrittenObject;
  try {
    written = await write(ctx, part.body, head, meta);
  } catch (err) {
    // A malformed multipart body is the whole request's problem, not this part's.
    if (err instanceof MultipartError) throw err;
    return fail(resourceReason(err), `${label}: not stored: ${(err as Error).message}`, ids);
  }
  const header = written.header;
  if (!header) {
    closeSync(written.fd);
    discard(written.tempPath);
    const problem = written.problem ?? 'unreadable dataset';
    const reason = NOT_AN_INSTANCE.test(problem) ? FailureReason.DataSetDoesNotMatchSopClass : FailureReason.CannotUnderstand;
    return fail(reason, `${label}: ${problem}`, ids);
  }
  const found = { sopClassUid: header.sopClassUid, sopInstanceUid: header.sopInstanceUid };
  if (req.studyInstanceUid && header.studyInstanceUid !== req.studyInstanceUid) {
    closeSync(written.fd);
    discard(written.tempPath);
    return fail(FailureReason.StudyInstanceUidMismatch, `${label}: instance belongs to study ${header.studyInstanceUid}, not ${req.studyInstanceUid} named in the URL`, found);
  }
  const entry: InstanceEntry = {
    sopInstanceUid: header.sopInstanceUid,
    sopClassUid: header.sopClassUid,
    studyInstanceUid: header.studyInstanceUid,
    seriesInstanceUid: header.seriesInstanceUid,
    transferSyntaxUid: header.transferSyntaxUid,
    contentHash: written.contentHash,
    size: written.size,
    path: ctx.objects.relPath(written.contentHash),
    receivedAt: new Date().toISOString(),
    ...(req.from ? { from: req.from } : {}),
  };
  // The dataset is what gets stored and indexed; a file meta naming another class (tools that
  // rewrite datasets leave stale meta) is stored as sent, with the PS3.4 warning for it.
  const mismatch = meta.mediaSopClassUid !== header.sopClassUid;
  const outcome = await commit(ctx, entry, written);
  if (outcome.kind === 'stored' && mismatch) {
    return { ...outcome, warningReason: WarningReason.DataSetDoesNotMatchSopClass, detail: `file meta names SOP class ${meta.mediaSopClassUid}, the dataset ${header.sopClassUid}` };
  }
  return outcome;
}

function fail(failureReason: number, detail: string, ids: { sopClassUid?: string; sopInstanceUid?: string } = {}): PartOutcome {
  return { kind: 'failed', failureReason, detail, ...ids };
}

/** Stores (or recognises) the written object under the UID lock; answers once it is durable. */
async function commit(ctx: IntakeContext, entry: InstanceEntry, written: WrittenObject): Promise<PartOutcome> {
  const uid = entry.sopInstanceUid;
  // The temp file and its descriptor are released exactly once: here, or by ObjectStore.place.
  let open = true;
  const release = (): void => {
    open = false;
    closeSync(written.fd);
    discard(written.tempPath);
  };
  const place = (): Promise<string> => {
    open = false;
    return ctx.objects.place(written.tempPath, written.fd, entry.contentHash);
  };
  try {
    return await ctx.index.withUid(uid, async (): Promise<PartOutcome> => {
      const current = await ctx.index.get('instances', uid);
      if (current?.contentHash === entry.contentHash) {
        // An idempotent re-send: the stored copy was synced before it was first acknowledged.
        release();
        return { kind: 'stored', entry: current, duplicate: true };
      }
      if (current) return conflict(ctx, current, entry, release, place);
      await place();
      const ops: Op[] = [
        { table: 'instances', key: uid, value: entry },
        { table: 'byStudy', key: `${entry.studyInstanceUid}\0${entry.seriesInstanceUid}\0${uid}`, value: uid },
      ];
      if (ctx.forwarding) {
        const now = new Date().toISOString();
        ops.push(...forwardOps({ sopInstanceUid: uid, state: 'pending', attempts: 0, nextAttemptAt: now, updatedAt: now }));
      }
      await ctx.index.commit(ops);
      return { kind: 'stored', entry, duplicate: false };
    });
  } catch (err) {
    if (open) release();
    ctx.log.error({ err: (err as Error).message, sopInstanceUid: uid }, 'instance not stored');
    return fail(resourceReason(err), `not stored: ${(err as Error).message}`, { sopClassUid: entry.sopClassUid, sopInstanceUid: uid });
  }
}

/** Lack of space is the receiver's state, not the instance's: the uploader should retry later. */
function resourceReason(err: unknown): number {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? FailureReason.OutOfResources : FailureReason.ProcessingFailure;
}

/**
 * Same UID, different bytes. Both are kept: the first stays the instance of record (what QIDO
 * lists and the PACS receives); the new one is stored beside it and flagged for a person.
 */
async function conflict(
  ctx: IntakeContext,
  current: InstanceEntry,
  entry: InstanceEntry,
  release: () => void,
  place: () => Promise<string>,
): Promise<PartOutcome> {
  const uid = entry.sopInstanceUid;
  const key = `${uid}\0${entry.contentHash}`;
  const detail = `SOP Instance UID ${uid} is already stored with different content (sha256 ${current.contentHash.slice(0, 12)}…, received ${current.receivedAt}); these bytes (sha256 ${entry.contentHash.slice(0, 12)}…) are kept aside for review, not stored as the instance`;
  if (await ctx.index.get('conflicts', key)) {
    release();
  } else {
    await place();
    const conflicts = [...(current.conflicts ?? []), entry.contentHash];
    await ctx.index.commit([
      { table: 'conflicts', key, value: { ...entry, conflictOf: current.contentHash } },
      { table: 'instances', key: uid, value: { ...current, conflicts } },
    ]);
    ctx.log.warn({ sopInstanceUid: uid, kept: current.contentHash, aside: entry.contentHash, from: entry.from }, 'same UID with different content: kept aside');
  }
  return fail(FailureReason.DuplicateSopInstance, detail, { sopClassUid: entry.sopClassUid, sopInstanceUid: uid });
}

interface Head {
  bytes: Buffer;
  /** The whole part fitted in the head. */
  ended: boolean;
}

/** Reads up to `max` bytes (enough for any file meta group) without losing what follows. */
async function readHead(body: Readable, max: number): Promise<Head> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Stopping early must not destroy the body: the rest of it is the dataset.
  for await (const chunk of body.iterator({ destroyOnReturn: false })) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= max) return { bytes: Buffer.concat(chunks), ended: false };
  }
  return { bytes: Buffer.concat(chunks), ended: true };
}

async function write(ctx: IntakeContext, body: Readable, head: Head, meta: FileMeta): Promise<WrittenObject> {
  const writer = new ObjectWriter({ tempPath: ctx.objects.newTempPath(), transferSyntaxUid: meta.transferSyntaxUid, prefix: head.bytes.subarray(0, meta.datasetOffset) });
  const rest = head.bytes.subarray(meta.datasetOffset);
  async function* dataset(): AsyncGenerator<Buffer> {
    if (rest.length > 0) yield rest;
    if (!head.ended) for await (const chunk of body) yield chunk as Buffer;
  }
  await pipeline(dataset, writer);
  return writer.result;
}
