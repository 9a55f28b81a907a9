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
