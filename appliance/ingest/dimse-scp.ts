// One DICOM association: the box's Storage SCP. Each C-STORE streams straight to a temp file
// (ObjectWriter); the success status goes out only after the store has the file fsynced and
// indexed. Anything it cannot accept is answered with a failure status and quarantined.
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import { buildFileMeta } from '../../shared/dicom/header.ts';
import { ACCEPTED_TRANSFER_SYNTAXES } from '../../shared/dicom/syntax.ts';
import type { InstanceSource } from '../../shared/types/store.ts';
import { ObjectWriter } from '../../shared/storage/object-writer.ts';
import { NullSink, type IngestContext, refuse, storeWritten } from './intake.ts';

const { Scp, Dataset, constants, responses } = dimse;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass } = constants;
type Association = dimse.association.Association;
type PresentationContext = dimse.association.PresentationContext;
type CStoreRequest = dimse.requests.CStoreRequest;

const ACCEPTED = new Set(ACCEPTED_TRANSFER_SYNTAXES);
/** Known SOP classes of services the box does not provide (query/retrieve, worklist, MPPS, …). */
const NOT_STORAGE = new Set(Object.values(SopClass).filter((uid) => uid !== SopClass.Verification));
const DIMSE_COMMENT_MAX = 64;

export interface ScpOptions {
  customOptions: { ingest: IngestContext; activeAssociations: () => number };
}

interface PendingStore {
  writer: Writable;
  /** Set when the store was refused before any byte was written. */
  refusal?: { status: number; comment: string };
}

export class BoxScp extends Scp {
  private readonly ctx: IngestContext;
  private readonly activeAssociations: () => number;
  private readonly sock: Socket;
  private source: InstanceSource = { kind: 'dimse', callingAe: '', calledAe: '', remoteAddress: '' };
  private pending: PendingStore | undefined;

  constructor(socket: Socket, opts: ScpOptions) {
    super(socket, opts as unknown as ConstructorParameters<typeof Scp>[1]);
    this.ctx = opts.customOptions.ingest;
    this.activeAssociations = opts.customOptions.activeAssociations;
    this.sock = socket;
    socket.on('close', () => this.dropPartial());
  }

  override associationRequested(association: Association): void {
    const cfg = this.ctx.config;
    const calling = association.getCallingAeTitle().trim();
    const called = association.getCalledAeTitle().trim();
    this.source = { kind: 'dimse', callingAe: calling, calledAe: called, remoteAddress: this.sock.remoteAddress ?? '' };
    const log = this.ctx.log.child({ callingAe: calling, calledAe: called, remote: this.source.remoteAddress });
    const reject = (result: number, source: number, reason: number, why: string) => {
      log.warn({ why }, 'association rejected');
      this.ctx.metrics.associations.inc({ result: 'rejected' });
      this.sendAssociationReject(result, source, reason);
    };
    if (cfg.checkCalledAe && called !== cfg.aeTitle) {
      return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized, `called AE is not ${cfg.aeTitle}`);
    }
    if (cfg.allowedCallingAe.length > 0 && !cfg.allowedCallingAe.includes(calling)) {
      return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, 'calling AE not allowed');
    }
    if (this.activeAssociations() > cfg.maxAssociations) {
      return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded, 'too many associations');
    }
    association.setMaxPduLength(cfg.maxPduLength);
    for (const { id } of association.getPresentationContexts()) this.negotiate(association.getPresentationContext(id));
    this.ctx.metrics.associations.inc({ result: 'accepted' });
    log.debug('association accepted');
    this.sendAssociationAccept();
  }

  /** Accepts any storage SOP class in the first supported syntax the SCU proposed (its own preference). */
  private negotiate(context: PresentationContext): void {
    const abstract = context.getAbstractSyntaxUid();
    if (NOT_STORAGE.has(abstract)) {
      context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
      return;
    }
    const ts = context.getTransferSyntaxUids().find((uid) => ACCEPTED.has(uid));
    if (ts) context.setResult(PresentationContextResult.Accept, ts);
    else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }

  override cEchoRequest(request: dimse.requests.CEchoRequest, callback: (response: dimse.responses.CEchoResponse) => void): void {
    const response = responses.CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }

  override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): Writable {
    const ts = context.getAcceptedTransferSyntaxUid() ?? '';
    if (!this.ctx.disk.ok) {
      this.pending = { writer: new NullSink(), refusal: { status: 0xa700, comment: `out of resources: ${this.ctx.disk.current.reason}` } };
      return this.pending.writer;
    }
    let writer: ObjectWriter;
    try {
      writer = new ObjectWriter({
        tempPath: this.ctx.store.newTempPath(),
        transferSyntaxUid: ts,
        prefix: buildFileMeta(request.getAffectedSopClassUid(), request.getAffectedSopInstanceUid(), ts),
      });
    } catch (err) {
      this.ctx.log.error({ err }, 'cannot create a temp file for an incoming object');
      this.pending = { writer: new NullSink(), refusal: failure(err as NodeJS.ErrnoException, 'cannot store') };
      return this.pending.writer;
    }
    // dcmjs-dimse ignores write()'s back-pressure after the first chunk: pause the socket
    // ourselves so a slow disk never lets a large object pile up in memory.
    const write = writer.write.bind(writer);
    const resume = () => this.sock.resume();
    writer.write = ((chunk: Buffer) => {
      if (!write(chunk)) {
        this.sock.pause();
        writer.once('drain', resume);
      }
      return true;
    }) as typeof writer.write;
    // The last chunks may fill the buffer right before end(): then 'drain' never comes, but the
    // release request behind them must still be read.
    writer.once('finish', resume);
    writer.once('close', resume);
    writer.on('error', (err) => this.ctx.log.error({ err, tempPath: writer.tempPath }, 'writing object failed'));
    this.pending = { writer };
    return writer;
  }

  override createDatasetFromStoreWritableStream(writable: Writable, context: PresentationContext, callback: (dataset: dimse.Dataset) => void): void {
    // The dataset stays on disk: hand dcmjs-dimse an empty one once the file is written.
    const done = () => callback(new Dataset({}, context.getAcceptedTransferSyntaxUid() ?? ''));
    if (writable.writableFinished || writable.errored) done();
    else {
      writable.once('finish', done);
      writable.once('error', done);
    }
  }

  override cStoreRequest(request: CStoreRequest, callback: (response: dimse.responses.CStoreResponse) => void): void {
    const pending = this.pending;
    this.pending = undefined;
    const answer = (status: number, comment?: string) => {
      const response = responses.CStoreResponse.fromRequest(request);
      response.setStatus(status);
      if (comment) response.setErrorComment(comment.slice(0, DIMSE_COMMENT_MAX));
      callback(response);
    };
    if (!pending) return answer(0x0110, 'processing failure: no data received');
    if (pending.refusal) {
      this.ctx.metrics.objects.inc({ via: 'dimse', outcome: 'refused' });
      return answer(pending.refusal.status, pending.refusal.comment);
    }
    const writer = pending.writer as ObjectWriter;
    const claimed = { sopClassUid: request.getAffectedSopClassUid(), sopInstanceUid: request.getAffectedSopInstanceUid() };
    if (writer.errored) {
      const refusal = failure(writer.errored as NodeJS.ErrnoException, 'write failed');
      void refuse(this.ctx, undefined, refusal.comment, this.source, claimed.sopInstanceUid);
      return answer(refusal.status, refusal.comment);
    }
    storeWritten(this.ctx, writer.result, this.source, claimed).then(
      (verdict) => answer(verdict.status, verdict.comment),
      (err: NodeJS.ErrnoException) => {
        this.ctx.log.error({ err, sopInstanceUid: claimed.sopInstanceUid }, 'store failed');
        const refusal = failure(err, 'store failed');
        answer(refusal.status, refusal.comment);
      },
    );
  }

  /** The peer went away mid-object: what arrived is not an object, keep nothing of it. */
  private dropPartial(): void {
    const pending = this.pending;
    this.pending = undefined;
    if (pending && !pending.writer.writableFinished) {
      this.ctx.metrics.objects.inc({ via: 'dimse', outcome: 'aborted' });
      this.ctx.log.warn({ ...this.source }, 'association closed mid-object: partial data discarded');
      pending.writer.destroy();
    }
  }
}

/** A full disk is "out of resources" (the sender may retry later); anything else a processing failure. */
function failure(err: NodeJS.ErrnoException, what: string): { status: number; comment: string } {
  return err.code === 'ENOSPC'
    ? { status: 0xa700, comment: `out of resources: ${what}: disk full` }
    : { status: 0x0110, comment: `processing failure: ${what}: ${err.code ?? err.message}` };
}
