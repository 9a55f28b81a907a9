// What both ways in (DICOM network and watch folder) do with a written object: check it, hand it
// to the store or to quarantine, and say which DICOM status that deserves.
import { closeSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { ApplianceConfig } from '../../shared/config/appliance.ts';
import type { Logger } from '../../shared/log.ts';
import type { AcceptOutcome, InstanceSource } from '../../shared/types/store.ts';
import type { ApplianceMetrics } from '../metrics.ts';
import type { DiskGuard } from '../store/disk-guard.ts';
import type { WrittenObject } from '../../shared/storage/object-writer.ts';
import type { Quarantine } from '../store/quarantine.ts';
import type { Store } from '../store/store.ts';

export interface IngestContext {
  config: Pick<ApplianceConfig, 'aeTitle' | 'checkCalledAe' | 'allowedCallingAe' | 'maxAssociations' | 'maxPduLength'>;
  store: Store;
  quarantine: Quarantine;
  disk: DiskGuard;
  metrics: ApplianceMetrics;
  log: Logger;
}

export interface Verdict {
  /** DICOM status for a C-STORE response. */
  status: number;
  comment?: string;
  outcome?: AcceptOutcome['outcome'];
  quarantined?: string;
}

/** What the sender said the object is (the C-STORE command); absent for files. */
export interface Claim {
  sopClassUid: string;
  sopInstanceUid: string;
}

export async function storeWritten(ctx: IngestContext, written: WrittenObject, source: InstanceSource, claim?: Claim): Promise<Verdict> {
  const via = source.kind;
  const header = written.header;
  let problem: { status: number; comment: string } | undefined;
  if (!header) {
    problem = { status: 0xc000, comment: `cannot understand: ${written.problem ?? 'unreadable dataset'}` };
  } else if (claim && header.sopClassUid !== claim.sopClassUid) {
    problem = { status: 0xa900, comment: `dataset SOP class ${header.sopClassUid} does not match ${claim.sopClassUid}` };
  } else if (claim && header.sopInstanceUid !== claim.sopInstanceUid) {
    problem = { status: 0xc000, comment: `dataset SOP instance UID does not match the command's` };
  }
  if (problem) {
    closeSync(written.fd);
    const quarantined = await refuse(ctx, written.tempPath, problem.comment, source, claim?.sopInstanceUid ?? header?.sopInstanceUid, written.size);
    return { ...problem, ...(quarantined ? { quarantined } : {}) };
  }
  const stopTimer = ctx.metrics.storeSeconds.startTimer();
  const result = await ctx.store.accept({ header: header!, contentHash: written.contentHash, tempPath: written.tempPath, fd: written.fd, size: written.size, source });
  stopTimer();
  ctx.metrics.objects.inc({ via, outcome: result.outcome });
  ctx.metrics.bytes.inc({ via }, written.size);
  ctx.log.debug({ id: result.record.id, outcome: result.outcome, via }, 'object stored');
  if (result.outcome === 'conflict') {
    ctx.log.warn({ id: result.record.id, reason: result.record.reason }, 'same UID with different content: both kept, new one held');
  }
  return { status: 0x0000, outcome: result.outcome };
}

/** Quarantines what could not be accepted; returns the quarantine id, if the bytes were kept. */
export async function refuse(
  ctx: IngestContext,
  path: string | undefined,
  reason: string,
  source: InstanceSource,
  sopInstanceUid?: string,
  size = 0,
): Promise<string | undefined> {
  ctx.metrics.objects.inc({ via: source.kind, outcome: 'refused' });
  ctx.log.warn({ reason, sopInstanceUid, ...source }, 'object refused');
  if (!path) return undefined;
  try {
    const entry = await ctx.quarantine.add(path, { reason, source, size, ...(sopInstanceUid ? { sopInstanceUid } : {}) });
    return entry.id;
  } catch (err) {
    ctx.log.error({ err, path }, 'could not quarantine refused object');
    return undefined;
  }
}

/** Swallows an object the box refuses before storing (e.g. disk full): the peer still gets a status. */
export class NullSink extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, callback: () => void): void {
    callback();
  }
}
