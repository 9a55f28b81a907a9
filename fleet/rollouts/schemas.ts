// Releases and rollouts as the fleet API speaks them and as they are persisted (one shape for
// both: what is on disk is what the API shows). Pure TypeBox: the dashboard imports the types.
import { Type, type Static } from '@sinclair/typebox';

/** Same pattern as BundleManifest.version; also safe as a file name (no '/', no leading dot). */
export const VERSION_PATTERN = '^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?$';
export const Version = Type.String({ pattern: VERSION_PATTERN, maxLength: 64 });

export const ReleaseRecord = Type.Object({
  version: Type.String(),
  /** SHA-256 (hex) and size of the bundle file: what UpdateOffer carries and the ETag. */
  sha256: Type.String(),
  size: Type.Integer(),
  /** Which pinned key signed it (keyIdOf). */
  keyId: Type.String(),
  arch: Type.String(),
  nodeVersion: Type.String(),
  dataSchema: Type.Integer(),
  files: Type.Integer({ description: 'files in the manifest' }),
  /** The manifest's createdAt (the build's source date, not the upload). */
  createdAt: Type.String(),
  uploadedBy: Type.String(),
  uploadedAt: Type.String(),
});
export type ReleaseRecord = Static<typeof ReleaseRecord>;

export const BOX_STATUSES = [
  'pending', // not offered (yet, or withdrawn by a pause)
  'offered',
  'downloading',
  'verifying',
  'installing',
  'restarting',
  'health-check',
  'committed',
  'rolled-back',
  'refused',
  'failed',
  'skipped', // this release failed on this box before (or the box is revoked): never offered
] as const;
export type BoxStatus = (typeof BOX_STATUSES)[number];
// Spelled out: a union mapped from the array is typed `never` by the fastify type provider.
export const BoxStatusSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('offered'),
  Type.Literal('downloading'),
  Type.Literal('verifying'),
  Type.Literal('installing'),
  Type.Literal('restarting'),
  Type.Literal('health-check'),
  Type.Literal('committed'),
  Type.Literal('rolled-back'),
  Type.Literal('refused'),
  Type.Literal('failed'),
  Type.Literal('skipped'),
]);

/** Statuses a box does not leave on its own. */
export const FINAL_STATUSES: ReadonlySet<BoxStatus> = new Set(['committed', 'rolled-back', 'refused', 'failed', 'skipped']);
/** Counted against a wave's failure threshold. */
export const FAILURE_STATUSES: ReadonlySet<BoxStatus> = new Set(['rolled-back', 'refused', 'failed']);
/** The box is acting on an offer. */
export const ACTIVE_STATUSES: ReadonlySet<BoxStatus> = new Set(['offered', 'downloading', 'verifying', 'installing', 'restarting', 'health-check']);

export const RolloutBox = Type.Object({
  deviceId: Type.String(),
  /** Index into waves; -1 for a box that already ran the version when the rollout was made. */
  wave: Type.Integer({ minimum: -1 }),
  status: BoxStatusSchema,
  reason: Type.Optional(Type.String()),
  offeredAt: Type.Optional(Type.String()),
  /** Fleet clock: the last change (offer, report, timeout). */
  updatedAt: Type.Optional(Type.String()),
  /** Box clock: `at` of the last status applied; older or equal ones (retained repeats) are ignored. */
  lastReportAt: Type.Optional(Type.String()),
  retryApproved: Type.Optional(Type.Boolean()),
  progress: Type.Optional(Type.Object({ bytes: Type.Integer(), total: Type.Integer() })),
});
export type RolloutBox = Static<typeof RolloutBox>;

export const WaveState = Type.Union([Type.Literal('waiting'), Type.Literal('running'), Type.Literal('complete')]);

export const Wave = Type.Object({
  index: Type.Integer(),
  /** Boxes the rollout has reached once this wave is done (cumulative). */
  cumulative: Type.Integer(),
  size: Type.Integer(),
  successThreshold: Type.Number(),
  failureThreshold: Type.Number(),
  state: WaveState,
  startedAt: Type.Optional(Type.String()),
  completedAt: Type.Optional(Type.String()),
  /** Failures an operator accepted by resuming: left out of this wave's rates from then on. */
  excused: Type.Array(Type.String()),
});
export type Wave = Static<typeof Wave>;

export const ROLLOUT_STATES = ['running', 'paused', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const TimelineEntry = Type.Object({
  at: Type.String(),
  event: Type.String(),
  detail: Type.Optional(Type.String()),
  deviceId: Type.Optional(Type.String()),
  wave: Type.Optional(Type.Integer()),
});
export type TimelineEntry = Static<typeof TimelineEntry>;

export const Rollout = Type.Object({
  id: Type.String(),
  version: Type.String(),
  group: Type.String(),
  sha256: Type.String(),
  size: Type.Integer(),
  state: Type.Union([Type.Literal('running'), Type.Literal('paused'), Type.Literal('completed'), Type.Literal('aborted')]),
  pauseReason: Type.Optional(Type.String()),
  currentWave: Type.Integer(),
  healthTimeoutMs: Type.Integer(),
  waves: Type.Array(Wave),
  boxes: Type.Array(RolloutBox),
  createdBy: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  timeline: Type.Array(TimelineEntry),
});
export type Rollout = Static<typeof Rollout>;

export const Counts = Type.Record(Type.String(), Type.Integer(), { description: 'boxes per status' });

export const WaveTallySchema = Type.Object({
  size: Type.Integer(),
  /** Boxes the rates are computed over: not skipped, not excused. */
  counted: Type.Integer(),
  committed: Type.Integer(),
  failures: Type.Integer(),
  active: Type.Integer(),
  pending: Type.Integer(),
  skipped: Type.Integer(),
  final: Type.Boolean(),
  successRate: Type.Union([Type.Number(), Type.Null()]),
  failureRate: Type.Union([Type.Number(), Type.Null()]),
});
export type WaveTally = Static<typeof WaveTallySchema>;

export const RolloutSummary = Type.Object({
  id: Type.String(),
  version: Type.String(),
  group: Type.String(),
  state: Type.String(),
  pauseReason: Type.Optional(Type.String()),
  currentWave: Type.Integer(),
  waves: Type.Integer(),
  boxes: Type.Integer(),
  counts: Counts,
  createdBy: Type.String(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type RolloutSummary = Static<typeof RolloutSummary>;

export const RolloutView = Type.Object({ ...Rollout.properties, counts: Counts, tallies: Type.Array(WaveTallySchema) });
export type RolloutView = Static<typeof RolloutView>;

// --- Requests ----------------------------------------------------------------------------------

export const WaveSpec = Type.Object(
  {
    percent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'share of the rollout\'s boxes reached once this wave is done (cumulative)' })),
    count: Type.Optional(Type.Integer({ minimum: 1, description: 'number of boxes reached once this wave is done (cumulative)' })),
    successThreshold: Type.Number({ minimum: 0, maximum: 1, default: 1 }),
    failureThreshold: Type.Number({ minimum: 0, maximum: 1, default: 0.1 }),
  },
  { additionalProperties: false },
);
export type WaveSpec = Static<typeof WaveSpec>;

export const DEFAULT_WAVES: WaveSpec[] = [
  { count: 1, successThreshold: 1, failureThreshold: 0.1 },
  { percent: 10, successThreshold: 1, failureThreshold: 0.1 },
  { percent: 50, successThreshold: 1, failureThreshold: 0.1 },
  { percent: 100, successThreshold: 1, failureThreshold: 0.1 },
];

export const RolloutCreate = Type.Object(
  {
    version: Version,
    group: Type.String({ minLength: 1, maxLength: 64 }),
    waves: Type.Optional(Type.Array(WaveSpec, { minItems: 1, maxItems: 20 })),
    healthTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 7 * 24 * 3600_000 })),
  },
  { additionalProperties: false },
);
export type RolloutCreate = Static<typeof RolloutCreate>;

export const LedgerEntry = Type.Object({
  deviceId: Type.String(),
  version: Type.String(),
  state: Type.Union([Type.Literal('failed'), Type.Literal('approved')]),
  reason: Type.String(),
  at: Type.String(),
  rolloutId: Type.Union([Type.String(), Type.Null()]),
  approvedBy: Type.Optional(Type.String()),
});
export type LedgerEntry = Static<typeof LedgerEntry>;
