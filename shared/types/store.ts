// The store's public contract. Every stage (ingest, filter, register, compress, uplink) and the
// admin API talk to the store only through these types.

/** Life cycle of one received instance. Later stages add their states here, nowhere else. */
export const INSTANCE_STATES = [
  'received', // durable on disk and indexed; ingest is done with it
  'filtered', // the filter passed it
  'held', // kept on the box until a person releases or discards it (filter verdict, UID conflict)
  'registered', // co-registration wrote a derived series for it
  'compressed', // transcoded for its destination(s)
  'queued', // waiting for upload
  'uploaded', // sent; receiver commit not yet confirmed
  'committed', // receiver confirmed it
  'dead-letter', // permanently refused by the receiver, with a reason
  'discarded', // a person decided it should not go anywhere
] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** Where an instance came from. */
export type InstanceSource =
  | { kind: 'dimse'; callingAe: string; calledAe: string; remoteAddress: string }
  | { kind: 'watch'; path: string }
  /** Indexed again from its stored file after an unclean stop. */
  | { kind: 'recovery'; path: string };

export interface HistoryEntry {
  at: string; // ISO 8601
  state: InstanceState;
  event: string; // short machine-readable verb, e.g. "stored", "duplicate-received"
  source?: InstanceSource;
  detail?: string;
}

/** The attributes the box indexes from each header (everything else stays in the file). */
export interface DicomHeader {
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  patientId?: string;
  patientName?: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyDate?: string;
  studyTime?: string;
  studyDescription?: string;
  accessionNumber?: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  instanceNumber?: number;
  imageType?: string;
  rows?: number;
  columns?: number;
  numberOfFrames?: number;
  bitsAllocated?: number;
  manufacturer?: string;
  bodyPartExamined?: string;
  /** Byte offset of Pixel Data (7FE0,0010) within the dataset, when present. */
  pixelDataOffset?: number;
}

export interface InstanceRecord {
  /** SOP Instance UID, or `<uid>#<hash prefix>` for a second version with different bytes. */
  id: string;
  header: DicomHeader;
  /** sha256 (hex) of the dataset bytes, meta header excluded: identical datasets hash alike. */
  contentHash: string;
  /** Size of the stored Part 10 file in bytes. */
  size: number;
  /** Path of the stored file relative to the data directory. */
  path: string;
  state: InstanceState;
  /** Why the instance is held or dead-lettered. */
  reason?: string;
  /** Set on a second version of a UID: the id of the first one. */
  conflictOf?: string;
  /** Ids of other versions that share this UID with different bytes. */
  conflicts?: string[];
  receivedAt: string;
  updatedAt: string;
  /** Set when retention removed the local files (the receiver holds the instance). */
  purgedAt?: string;
  history: HistoryEntry[];
}

export interface SeriesSummary {
  seriesInstanceUid: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  instances: number;
}

export interface StudyRecord {
  studyInstanceUid: string;
  patientId?: string;
  patientName?: string;
  studyDate?: string;
  studyDescription?: string;
  accessionNumber?: string;
  modalities: string[];
  series: SeriesSummary[];
  instances: number;
  bytes: number;
  conflicts: number;
  firstReceivedAt: string;
  lastReceivedAt: string;
  /** Set when no instance arrived for the quiet time; cleared if one arrives later. */
  completedAt?: string;
  /** Instance count per state, for upload progress. */
  states: Partial<Record<InstanceState, number>>;
}

/** What ingest hands to the store once an object's bytes are written to a temp file. */
export interface IncomingObject {
  header: DicomHeader;
  contentHash: string;
  /** Absolute path of the temp file, a complete Part 10 file (written, not yet synced). */
  tempPath: string;
  /** An open descriptor of the temp file: the store syncs through it and closes it. */
  fd?: number;
  size: number;
  source: InstanceSource;
}

export type AcceptOutcome =
  | { outcome: 'stored'; record: InstanceRecord }
  | { outcome: 'duplicate'; record: InstanceRecord }
  | { outcome: 'conflict'; record: InstanceRecord };

export interface StoreEvents {
  'instance-stored': [InstanceRecord];
  'study-complete': [StudyRecord];
  'state-changed': [InstanceRecord, InstanceState];
}

export interface QueueSummary {
  byState: Partial<Record<InstanceState, number>>;
  pendingBytes: number;
  oldestPendingAt?: string;
}
