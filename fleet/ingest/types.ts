// What the cloud receiver keeps per instance and per forward, and how it is configured.
import type { FastifyRequest } from 'fastify';
import type { Logger } from '../../shared/log.ts';
import type { StowInstance, StowClientOptions, StowResult } from '../../shared/dicomweb/types.ts';

/** Who uploaded an instance. `verified` is false for a self-declared header (no auth yet). */
export interface Uploader {
  id: string;
  verified: boolean;
}

/** One stored object. The record of a UID is its first version; later different bytes are conflicts. */
export interface InstanceEntry {
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** sha256 (hex) of the dataset bytes (file meta excluded). */
  contentHash: string;
  /** Bytes of the stored Part 10 file. */
  size: number;
  /** Relative to the data directory: objects/<hash[0:2]>/<hash>.dcm */
  path: string;
  receivedAt: string;
  from?: Uploader;
  /** On the record of a UID: content hashes of other versions received since (kept, not served). */
  conflicts?: string[];
  /** On a conflicting version: the hash of the record it conflicts with. */
  conflictOf?: string;
}

export type ForwardState = 'pending' | 'forwarded' | 'failed';

export interface ForwardEntry {
  sopInstanceUid: string;
  state: ForwardState;
  attempts: number;
  /** ISO time of the next try while pending. */
  nextAttemptAt: string;
  updatedAt: string;
  lastError?: string;
  failureReason?: number;
}

/** The subset of shared/dicomweb/stow-client.ts StowClient the forwarder needs (tests substitute it). */
export interface StowSender {
  store(instances: StowInstance[]): Promise<StowResult>;
  close?(): void;
}

export interface ForwardOptions extends StowClientOptions {
  /** Instances per STOW-RS request (default 20). */
  batchSize?: number;
  /** First retry delay; doubles per attempt up to maxDelayMs (defaults 2 s and 10 min). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Retryable failures after which an instance is given up as failed (default 50, about a week at 10 min). */
  maxAttempts?: number;
  /** Replaces the HTTP client (tests; a client shared with other code). */
  client?: StowSender;
}

export interface StowReceiverOptions {
  dataDir: string;
  log: Logger;
  forward?: ForwardOptions;
  /**
   * The uploader of a request. Default: a `uploader` request decoration set by an auth hook
   * (verified), else the X-Mbox-Uploader header (unverified).
   */
  identify?: (req: FastifyRequest) => Uploader | undefined;
  /** Base for Retrieve URLs (…/dicom-web); default from the request's protocol and Host. */
  publicBaseUrl?: string;
  /** Hands out the receiver's handle once open (status pages, tests). */
  onOpen?: (receiver: ReceiverHandle) => void;
}

export interface ForwardSummary {
  pending: number;
  forwarded: number;
  failed: number;
}

export interface ReceiverHandle {
  getInstance(sopInstanceUid: string): Promise<InstanceEntry | undefined>;
  forwardSummary(): Promise<ForwardSummary>;
  getForward(sopInstanceUid: string): Promise<ForwardEntry | undefined>;
  /** Runs the forward queue now (instead of at its next timer). */
  forwardNow(): Promise<void>;
}
