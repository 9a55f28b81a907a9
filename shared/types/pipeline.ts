// Contracts between the box's stages after ingest: compress → queue → uplink.

/** What a destination wants to receive. */
export type TargetSyntax = 'jpeg-ls' | 'htj2k' | 'explicit-le' | 'as-received';

export interface TranscodeRequest {
  /** A stored Part 10 file. */
  inputPath: string;
  /** Where to write the transcoded Part 10 file (written and fsynced only when outcome is 'transcoded'). */
  outputPath: string;
  target: TargetSyntax;
}

export interface TranscodeResult {
  /** 'unchanged': nothing written; the input goes as received (see reason). */
  outcome: 'transcoded' | 'unchanged';
  /** Transfer syntax of what will be sent. */
  transferSyntaxUid: string;
  inputSize: number;
  /** Size of what will be sent (output file, or the input when unchanged). */
  size: number;
  /** Why the object goes as received: no pixel data, lossy source, codec cannot handle it, … */
  reason?: string;
  /** sha256 of the decoded pixels; for 'transcoded' it equals the original pixels' hash (verified). */
  pixelSha256?: string;
  encodeMs: number;
}

export interface Transcoder {
  transcode(request: TranscodeRequest): Promise<TranscodeResult>;
  close(): Promise<void>;
}

/** STAT goes first and may bypass a destination's time windows. */
export type Priority = 'stat' | 'routine';

/** One instance on its way to one destination. */
export interface DeliveryRecord {
  destination: string;
  instanceId: string;
  sopInstanceUid: string;
  sopClassUid: string;
  studyInstanceUid: string;
  state: 'pending' | 'committed' | 'dead-letter';
  priority: Priority;
  /** When the instance arrived on the box: the queue is oldest first within a priority. */
  receivedAt: string;
  /** The file to send (relative to the data dir): the stored object, or its transcoded copy. */
  path: string;
  size: number;
  transferSyntaxUid: string;
  attempts: number;
  nextAttemptAt?: string;
  lastError?: string;
  committedAt?: string;
}

/** What an uploader learned about one delivery. */
export interface DeliveryOutcome {
  instanceId: string;
  result: 'committed' | 'retry' | 'dead-letter';
  detail?: string;
  /** For 'retry': not before this time. */
  nextAttemptAt?: string;
}

export interface DestinationSummary {
  destination: string;
  pending: number;
  pendingBytes: number;
  committed: number;
  committedBytes: number;
  deadLetter: number;
  oldestPendingAt?: string;
}
