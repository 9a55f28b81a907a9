// DICOMweb STOW-RS as both sides see it: the box's uplink and the fleet's cloud receiver.

/** One instance to send: a Part 10 file on disk. */
export interface StowInstance {
  sopInstanceUid: string;
  sopClassUid: string;
  path: string;
  size: number;
}

export interface StowInstanceResult {
  sopInstanceUid: string;
  /** 'stored': the receiver confirmed it (ReferencedSOPSequence); 'failed': FailedSOPSequence or whole-request failure. */
  outcome: 'stored' | 'failed';
  /** DICOM FailureReason (0008,1197) when the receiver gave one. */
  failureReason?: number;
  /** True when sending again later may succeed (out of resources, server busy, network); false for permanent refusals. */
  retryable: boolean;
  /** Human-readable reason, kept in the instance's history. */
  detail?: string;
}

export interface StowResult {
  httpStatus: number;
  results: StowInstanceResult[];
  /** From a Retry-After header, when the server sent one. */
  retryAfterMs?: number;
}

export type StowAuth =
  | { kind: 'none' }
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; username: string; password: string };

export interface StowClientOptions {
  /** DICOMweb base URL, e.g. http://127.0.0.1:8042/dicom-web */
  baseUrl: string;
  auth?: StowAuth;
  /** PEM CA bundle (file contents) to trust, in addition to the system's. */
  ca?: string;
  /** PEM client certificate and key (file contents) for mutual TLS. */
  cert?: string;
  key?: string;
  /** TLS verification is on unless explicitly turned off. */
  rejectUnauthorized?: boolean;
  timeoutMs?: number;
}
