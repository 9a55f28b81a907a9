// Message schemas for every topic in ./topics.ts. Both sides validate what they receive against
// these (a box never trusts a payload to name its identity; the fleet never trusts a payload to
// name a device — the topic, checked by the broker ACL, does).
import { Type, type Static } from '@sinclair/typebox';
import { ApplianceConfigSchema } from '../config/appliance.ts';

// ISO 8601; no 'format' keyword so every Ajv instance (fastify's, ours) reads the schema alike.
const Iso = Type.String({ minLength: 10, maxLength: 40 });
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

/** Retained on mbox/<id>/status. The last-will carries { online: false, reason: 'connection-lost' }. */
export const StatusMessage = Type.Object({
  online: Type.Boolean(),
  at: Iso,
  reason: Type.Optional(Type.Union([Type.Literal('connected'), Type.Literal('clean-stop'), Type.Literal('connection-lost'), Type.Literal('revoked')])),
  firmware: Type.Optional(Type.String()),
});
export type StatusMessage = Static<typeof StatusMessage>;

/** Host figures from systeminformation. Any of them may be null (VMs have no temperatures, etc.). */
export const SystemFigures = Type.Object({
  cpuLoadPercent: NullableNumber,
  memUsedBytes: NullableNumber,
  memTotalBytes: NullableNumber,
  /** The filesystem holding the data directory. */
  diskUsedBytes: NullableNumber,
  diskTotalBytes: NullableNumber,
  diskUsedPercent: NullableNumber,
  osUptimeS: NullableNumber,
  netRxBytesPerSec: NullableNumber,
  netTxBytesPerSec: NullableNumber,
  cpuTempC: NullableNumber,
});
export type SystemFigures = Static<typeof SystemFigures>;

export const PipelineFigures = Type.Object({
  /** Instances in the store by state (received … committed, held, dead-letter, discarded). */
  byState: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  received: Type.Integer({ minimum: 0 }),
  committed: Type.Integer({ minimum: 0 }),
  held: Type.Integer({ minimum: 0 }),
  deadLetter: Type.Integer({ minimum: 0 }),
  /** Instances waiting for upload (queued + uploaded-not-yet-confirmed). */
  queueDepth: Type.Integer({ minimum: 0 }),
  oldestQueuedAgeS: NullableNumber,
  /** Bytes sent to destinations since the box process started. */
  bytesOut: Type.Number({ minimum: 0 }),
  lastError: Type.Union([Type.String(), Type.Null()]),
  diskAccepting: Type.Boolean(),
});
export type PipelineFigures = Static<typeof PipelineFigures>;

/** Per day (box local date) and modality: what the operations dashboard charts. */
export const DailyFigures = Type.Object({
  day: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$' }),
  modality: Type.String(),
  studies: Type.Integer({ minimum: 0 }),
  instances: Type.Integer({ minimum: 0 }),
  /** Stored size of what was received. */
  bytesReceived: Type.Number({ minimum: 0 }),
  /** What went over the uplink for the committed instances (after compression). */
  bytesSent: Type.Number({ minimum: 0 }),
  /** Bytes the filter kept back (held or discarded) instead of uploading. */
  bytesFiltered: Type.Number({ minimum: 0 }),
  /** Received → committed at the receiver. */
  uploadLatencyMs: Type.Object({ count: Type.Integer({ minimum: 0 }), sum: Type.Number({ minimum: 0 }), max: Type.Number({ minimum: 0 }) }),
});
export type DailyFigures = Static<typeof DailyFigures>;

/** mbox/<id>/telemetry. Compact on purpose: one message is a few hundred bytes every 30 s. */
export const Telemetry = Type.Object({
  at: Iso,
  seq: Type.Integer({ minimum: 0 }),
  firmware: Type.String(),
  uptimeS: Type.Number({ minimum: 0 }),
  system: SystemFigures,
  pipeline: PipelineFigures,
  /** Today and yesterday, so the figures around midnight are not lost. */
  daily: Type.Array(DailyFigures, { maxItems: 64 }),
});
export type Telemetry = Static<typeof Telemetry>;

/**
 * Config keys the fleet may set on a box. Identity, paths and the local listener addresses stay
 * local: a remote mistake there could cut the box off for good.
 */
export const REMOTE_CONFIG_KEYS = [
  'aeTitle',
  'dicomPort',
  'checkCalledAe',
  'allowedCallingAe',
  'maxAssociations',
  'maxPduLength',
  'watchSettleMs',
  'watchIntervalMs',
  'watchGiveUpMs',
  'quietTimeMs',
  'diskHighWaterPercent',
  'diskMinFreeBytes',
  'destinations',
  'retentionHours',
  'compressWorkers',
  'logLevel',
  'telemetryIntervalMs',
] as const satisfies ReadonlyArray<keyof typeof ApplianceConfigSchema.properties>;
export type RemoteConfigKey = (typeof REMOTE_CONFIG_KEYS)[number];

export const RemoteConfig = Type.Partial(Type.Pick(ApplianceConfigSchema, [...REMOTE_CONFIG_KEYS]), { additionalProperties: false });
export type RemoteConfig = Static<typeof RemoteConfig>;

/**
 * mbox/<id>/config/desired, retained. `config` is kept loose here on purpose: the box validates
 * it against RemoteConfig itself and reports the exact error, rather than the message being
 * dropped as unparsable.
 */
export const DesiredConfig = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  config: Type.Record(Type.String(), Type.Unknown()),
  issuedAt: Iso,
  issuedBy: Type.String(),
});
export type DesiredConfig = Static<typeof DesiredConfig>;

/** mbox/<id>/config/reported, retained. */
export const ReportedConfig = Type.Object({
  /** The desired version this report answers; 0 before any desired config arrived. */
  version: Type.Integer({ minimum: 0 }),
  status: Type.Union([Type.Literal('applied'), Type.Literal('rejected'), Type.Literal('failed'), Type.Literal('none')]),
  /** Why it was rejected (schema errors, forbidden keys) or failed (the step, and that it was rolled back). */
  error: Type.Optional(Type.String()),
  /** The planner's steps, in the order they ran. */
  steps: Type.Array(Type.String()),
  at: Iso,
  firmware: Type.String(),
  /** Effective values of the remote keys after this report. */
  effective: Type.Record(Type.String(), Type.Unknown()),
});
export type ReportedConfig = Static<typeof ReportedConfig>;

export const COMMAND_NAMES = ['ping', 'restart', 'resend-study', 'release-held', 'discard-held', 'fetch-logs'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** mbox/<id>/commands/req. Args by name: resend-study {studyInstanceUid}; release-held/discard-held {id} or {ids}; fetch-logs {lines?, level?}. */
export const CommandRequest = Type.Object({
  id: Type.String({ minLength: 8, maxLength: 64 }),
  name: Type.String(),
  args: Type.Record(Type.String(), Type.Unknown()),
  issuedAt: Iso,
  /** A box that gets the command later (it was offline) answers 'expired' instead of running it. */
  expiresAt: Iso,
});
export type CommandRequest = Static<typeof CommandRequest>;

export const CommandResponse = Type.Object({
  id: Type.String(),
  status: Type.Union([Type.Literal('ok'), Type.Literal('error'), Type.Literal('expired'), Type.Literal('unknown-command')]),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.String()),
  at: Iso,
});
export type CommandResponse = Static<typeof CommandResponse>;
